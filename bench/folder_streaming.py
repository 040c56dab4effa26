"""A big image folder, streamed from disk against held in memory: memory and time per step.

Generates ``--images`` 224x224 JPEGs in ``--classes`` class folders (smooth
random colour fields, seeded; made once and reused), then fine-tunes
MobileNetV2 (width 0.35, tf_keras, from scratch, 224x224x3) on them with
``pipeline.data.datasets.make_datasets("folder", ...)`` and Keras ``fit``:

- ``stream``: the whole folder at the default ``memory_bytes``. At 20,000
  images the decoded pixels (3.0 GB, 6 GB with the shuffle buffer) do not
  fit the budget, so every epoch decodes the files anew.
- ``memory``: the first ``--memory_subset`` images (a seeded subset), which
  fit, decoded into memory once: the old path, as a per-step reference.

Each run is a fresh process that reports its milliseconds per step (median
over ``--steps`` steps after ``--warmup``) and its peak RSS; the two modes
alternate ``--repeats`` times. Prints both, the stream/memory ratio of each
adjacent pair, and their median and range.

Usage:
  .venv/bin/python bench/folder_streaming.py [--images=20000] [--repeats=3] [--steps=40] \
      [--dir=/tmp/folder_streaming] [--out=bench/results/folder_streaming.json]
"""
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

flags.DEFINE_integer("images", 20000, "JPEGs in the generated folder.")
flags.DEFINE_integer("classes", 10, "Class folders.")
flags.DEFINE_integer("memory_subset", 2000, "Training images of the in-memory reference.")
flags.DEFINE_integer("batch_size", 32, "Examples per step.")
flags.DEFINE_integer("repeats", 3, "Runs per mode, alternating, fresh processes.")
flags.DEFINE_integer("steps", 40, "Timed steps per run.")
flags.DEFINE_integer("warmup", 8, "Untimed steps first (tracing, allocation, file cache).")
flags.DEFINE_string("dir", "/tmp/folder_streaming", "Where the folder is generated.")
flags.DEFINE_string("out", "", "Write the figures as JSON here too.")
flags.DEFINE_string("child", "", "Internal: 'stream' or 'memory'; time one run, print JSON.")
FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE = 224


def _generate(directory: str, count: int, classes: int) -> None:
    """Writes ``count`` seeded JPEGs (a 7x7 colour field, upsampled, plus noise) once."""
    import tensorflow as tf

    done = os.path.join(directory, f".done_{count}_{classes}")
    if os.path.exists(done):
        return
    rng = np.random.default_rng(0)
    for start in range(0, count, 250):
        ids = np.arange(start, min(count, start + 250))
        fields = rng.random((len(ids), 7, 7, 3)) * 160 + (ids % classes)[:, None, None, None] * 9
        noise = rng.normal(0, 12, (len(ids), SIDE, SIDE, 3))
        batch = tf.cast(tf.clip_by_value(tf.image.resize(fields, (SIDE, SIDE)) + noise, 0, 255),
                        tf.uint8)
        for i, pixels in zip(ids, batch):
            folder = os.path.join(directory, f"class_{i % classes:02d}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"{i:06d}.jpg"), "wb") as f:
                f.write(tf.io.encode_jpeg(pixels, quality=90).numpy())
    open(done, "w").close()


def _child(mode: str) -> None:
    sys.path.insert(0, ROOT)
    import pipeline  # noqa: F401
    import tf_keras
    from pipeline.data import datasets

    tf_keras.utils.set_random_seed(0)
    subset = FLAGS.memory_subset if mode == "memory" else 0
    made = time.perf_counter()
    ds = datasets.make_datasets("folder", data_dir=FLAGS.dir, batch_size=FLAGS.batch_size,
                                val_split=0, subset=subset, test_subset=64,
                                image_size=SIDE, channels=3, flip=True, seed=0)
    made = time.perf_counter() - made
    model = tf_keras.applications.MobileNetV2(alpha=0.35, input_shape=(SIDE, SIDE, 3),
                                              weights=None, classes=FLAGS.classes)
    model.compile(tf_keras.optimizers.SGD(0.01, momentum=0.9),
                  tf_keras.losses.SparseCategoricalCrossentropy())
    stamps = []

    class Clock(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    model.fit(ds.train, epochs=1, steps_per_epoch=FLAGS.warmup + FLAGS.steps + 1, verbose=0,
              callbacks=[Clock()])
    steps = np.diff(stamps[FLAGS.warmup:]) * 1000
    print(json.dumps({"mode": mode, "ms_per_step": float(np.median(steps)),
                      "train_images": ds.sizes["train"], "make_datasets_s": made,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _run(mode: str) -> dict:
    command = [sys.executable, os.path.abspath(__file__), f"--child={mode}",
               f"--dir={FLAGS.dir}", f"--memory_subset={FLAGS.memory_subset}",
               f"--batch_size={FLAGS.batch_size}", f"--steps={FLAGS.steps}",
               f"--warmup={FLAGS.warmup}", f"--classes={FLAGS.classes}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.child:
        return _child(FLAGS.child)
    started = time.perf_counter()
    _generate(FLAGS.dir, FLAGS.images, FLAGS.classes)
    print(f"folder: {FLAGS.images} JPEGs in {FLAGS.dir} ({time.perf_counter() - started:.0f} s)")
    runs = []
    for repeat in range(FLAGS.repeats):
        for mode in ("stream", "memory"):
            runs.append(_run(mode))
            print(json.dumps(runs[-1]), flush=True)
    stream = [r for r in runs if r["mode"] == "stream"]
    memory = [r for r in runs if r["mode"] == "memory"]
    ratios = [s["ms_per_step"] / m["ms_per_step"] for s, m in zip(stream, memory)]
    summary = {
        "images": FLAGS.images, "batch_size": FLAGS.batch_size, "runs": runs,
        "stream_over_memory": {"median": float(np.median(ratios)), "min": min(ratios),
                               "max": max(ratios), "pairs": ratios},
        "peak_rss_mb": {mode: [r["peak_rss_mb"] for r in runs if r["mode"] == mode]
                        for mode in ("stream", "memory")},
    }
    for mode, group in (("stream", stream), ("memory", memory)):
        ms = [r["ms_per_step"] for r in group]
        rss = [r["peak_rss_mb"] for r in group]
        print(f"{mode:6s} {group[0]['train_images']:6d} images: {np.median(ms):.0f} ms/step "
              f"(range {min(ms):.0f}-{max(ms):.0f}), peak RSS {max(rss):.0f} MB")
    print(f"stream/memory per step: median {np.median(ratios):.3f} "
          f"(pairs {', '.join(f'{r:.3f}' for r in ratios)})")
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    app.run(main)
