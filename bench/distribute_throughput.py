"""Fine-tuning throughput (images/s) with 1 and 2 local MultiWorkerMirroredStrategy workers.

Each run starts N worker processes on loopback ports (one ``TF_CONFIG`` each,
CPU only). Every worker loads the shipped VGG baseline, prunes 50% of its
MACs (global L1, as the default config) and fine-tunes it with the
pipeline's recipe and strategy code (:meth:`pipeline.training.distribute.Cluster.clone`,
global batch ``--batch_size`` split over the workers): one warm-up epoch,
then ``--epochs`` timed epochs of ``--steps`` steps. The chief prints the
images per second of the timed epochs (global batch x steps / seconds).
Runs are repeated ``--repeats`` times per worker count, alternating the
counts, and summarised as median and spread (min-max, % of the median).

On one machine the workers share its cores (and, by default, each worker's
TensorFlow sizes its thread pools for all of them), so 2 workers measure the
cost of the collectives, not a speed-up; pin them with ``--cpus`` to see how
the work splits. See BENCHMARKS.md.

Usage:
  .venv/bin/python bench/distribute_throughput.py [--workers=1,2] [--repeats=3] \
      [--steps=50] [--epochs=2] [--batch_size=128] [--cpus=0,1]
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_list("workers", ["1", "2"], "Worker counts to compare.")
flags.DEFINE_integer("repeats", 3, "Runs per worker count.")
flags.DEFINE_integer("steps", 50, "Steps per timed epoch.")
flags.DEFINE_integer("epochs", 2, "Timed epochs (after one warm-up epoch).")
flags.DEFINE_integer("batch_size", 128, "Global batch (split across the workers).")
flags.DEFINE_float("width", 1.0, "Build a fresh VGG of this width instead of the shipped one "
                   "(any value but 1.0); for quick smoke runs.")
flags.DEFINE_list("cpus", [], "Pin worker i to CPU cpus[i % len(cpus)] with taskset "
                  "(empty: no pinning).")
flags.DEFINE_integer("timeout", 900, "Seconds before a run is killed and reported as failed.")
flags.DEFINE_string("child", "", "Internal: run as a worker; the value is unused.")
FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # configs/ and models/ live beside pipeline/


def _child():
    import pipeline
    from pipeline.training import distribute

    cluster = distribute.setup("multi_worker")  # first, before other TensorFlow ops
    import tf_keras
    import models
    from configs import default
    from pipeline.data import datasets as data
    from pipeline.training import fit as train

    config = default.get_config()
    ds = data.make_datasets("fashion_mnist", batch_size=FLAGS.batch_size, val_split=0.0,
                            flip=True, shift=2, seed=0)
    if FLAGS.width == 1.0:
        base = tf_keras.models.load_model(config.model.path, compile=False)
    else:  # seeded: every worker must prune the same weights to the same architecture
        tf_keras.utils.set_random_seed(0)
        base = models.build("vgg", ds.input_shape, ds.num_classes, width=FLAGS.width)
    pruned = pipeline.prune(base, 0.5, target="macs", criterion="l1").model
    recipe = train.Recipe.from_config(config.finetune)
    model = cluster.clone(pruned)
    with cluster.scope():
        train.compile_model(model, recipe, FLAGS.steps)
    timer = _epoch_timer()
    model.fit(ds.train, epochs=1 + FLAGS.epochs, steps_per_epoch=FLAGS.steps, verbose=0,
              callbacks=[timer])
    seconds = sum(timer.seconds[1:])
    if cluster.is_chief:
        print("RESULT " + json.dumps({
            "workers": cluster.num_workers, "images_per_s": FLAGS.batch_size * FLAGS.steps *
            FLAGS.epochs / seconds, "seconds": seconds, "epoch_seconds": timer.seconds}),
            flush=True)


def _epoch_timer():
    """A Keras callback whose ``seconds`` lists each epoch's wall time."""
    import tf_keras

    class EpochTimer(tf_keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self._start = [], 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def _ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [f"localhost:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run(workers: int) -> dict:
    """One run with ``workers`` processes; the chief's result."""
    ports = _ports(workers)
    passed = [f"--{name}={FLAGS[name].serialize().split('=', 1)[1]}" for name in
              ("steps", "epochs", "batch_size", "width")]
    procs, logs = [], [tempfile.TemporaryFile("w+") for _ in range(workers)]
    for i in range(workers):
        # The format of pipeline.training.distribute.tf_config, without loading TensorFlow here.
        tf_config = json.dumps({"cluster": {"worker": ports},
                                "task": {"type": "worker", "index": i}})
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CONFIG=tf_config)
        pin = ["taskset", "-c", FLAGS.cpus[i % len(FLAGS.cpus)]] if FLAGS.cpus else []
        procs.append(subprocess.Popen(
            pin + [sys.executable, os.path.abspath(__file__), "--child=1", *passed], cwd=ROOT,
            env=env, stdout=subprocess.PIPE, stderr=logs[i], text=True))
    try:
        outputs = [p.communicate(timeout=FLAGS.timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    lines = [l for l in outputs[0].splitlines() if l.startswith("RESULT ")]
    if any(p.returncode for p in procs) or not lines:
        logs[0].seek(0)
        raise RuntimeError(f"{workers}-worker run failed (exit codes "
                           f"{[p.returncode for p in procs]}); the chief's stderr ends:\n"
                           + logs[0].read()[-2000:])
    return json.loads(lines[0][len("RESULT "):])


def main(argv):
    del argv
    if FLAGS.child:
        _child()
        return
    counts = [int(w) for w in FLAGS.workers]
    results = {n: [] for n in counts}
    start = time.time()
    for repeat in range(FLAGS.repeats):
        for n in counts:  # alternate, so drift in machine load hits every count alike
            result = _run(n)
            results[n].append(result["images_per_s"])
            print(f"repeat {repeat + 1}/{FLAGS.repeats}, {n} worker(s): "
                  f"{result['images_per_s']:.1f} images/s", flush=True)
    print(f"\nfine-tuning throughput, global batch {FLAGS.batch_size}, {FLAGS.epochs} timed "
          f"epochs of {FLAGS.steps} steps, {FLAGS.repeats} repeats "
          f"({time.time() - start:.0f} s in all)")
    print("| workers | median images/s | min | max | spread |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n, values in results.items():
        median = statistics.median(values)
        print(f"| {n} | {median:.1f} | {min(values):.1f} | {max(values):.1f} | "
              f"{(max(values) - min(values)) / median:.1%} |")


if __name__ == "__main__":
    app.run(main)
