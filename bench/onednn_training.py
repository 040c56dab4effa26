"""Training speed with TensorFlow's oneDNN kernels on and off (``TF_ENABLE_ONEDNN_OPTS``).

``import pipeline`` turns oneDNN off (it crashes TF 2.21 in the backward pass
of 8-channel strided 1x1 convolutions, see pipeline/_env.py). This measures
what that costs: the default model (the shipped VGG, built from scratch at
28x28x1, 10 classes) and the same model pruned by 50% of its MACs at
``round_to=16`` (as the default run fine-tunes it), each trained for
``--steps`` SGD steps of batch 128 on random data after ``--warmup`` steps,
in a fresh process per run, the two settings alternating ``--repeats`` times.
Prints milliseconds per step (median and range per setting) and the
off/on ratio of each adjacent pair.

Usage:
  .venv/bin/python bench/onednn_training.py [--repeats=5] [--steps=60] [--out=bench/results/onednn_training.json]
"""
import json
import os
import subprocess
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_integer("repeats", 5, "Runs per setting and model (alternating, fresh processes).")
flags.DEFINE_integer("steps", 60, "Timed training steps per run.")
flags.DEFINE_integer("warmup", 10, "Untimed steps first (graph tracing, allocation).")
flags.DEFINE_string("out", "", "Write the figures as JSON here too.")
flags.DEFINE_string("child", "", "Internal: 'full' or 'pruned'; time one run and print JSON.")
FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(which: str) -> None:
    import time

    sys.path.insert(0, ROOT)
    import pipeline
    import models
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = models.build("vgg", (28, 28, 1), 10)
    if which == "pruned":
        model = pipeline.prune(model, 0.5, round_to=16).model
    model.compile(tf_keras.optimizers.SGD(0.01, momentum=0.9),
                  tf_keras.losses.SparseCategoricalCrossentropy(from_logits=False))
    rng = np.random.default_rng(0)
    x = rng.random((128, 28, 28, 1), np.float32)
    y = rng.integers(0, 10, 128)
    for _ in range(FLAGS.warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        model.train_on_batch(x, y)
    ms = (time.perf_counter() - start) / FLAGS.steps * 1e3
    print(json.dumps({"model": which, "onednn": os.environ["TF_ENABLE_ONEDNN_OPTS"],
                      "ms_per_step": ms}))


def _run(which: str, onednn: str) -> float:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, __file__, f"--child={which}",
                          f"--steps={FLAGS.steps}", f"--warmup={FLAGS.warmup}"],
                         capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def main(argv):
    del argv
    if FLAGS.child:
        _child(FLAGS.child)
        return
    results = {}
    for which in ("full", "pruned"):
        on, off = [], []
        for _ in range(FLAGS.repeats):
            on.append(_run(which, "1"))
            off.append(_run(which, "0"))
        ratios = np.asarray(off) / np.asarray(on)
        results[which] = {"on_ms": on, "off_ms": off, "off_over_on": ratios.tolist()}
        print(f"{which}: oneDNN on {np.median(on):.1f} ms/step ({min(on):.1f}-{max(on):.1f}), "
              f"off {np.median(off):.1f} ms/step ({min(off):.1f}-{max(off):.1f}); "
              f"off/on median {np.median(ratios):.2f} (pairs {ratios.min():.2f}-{ratios.max():.2f})",
              flush=True)
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump({"steps": FLAGS.steps, "batch": 128, "results": results}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
