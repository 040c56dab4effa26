"""round_to="auto" beside round_to 1, 8, 16 and 32: speed-up at 50% fewer MACs, through LiteRT.

Each model (tf_keras.applications, 224x224, random weights, seed 0) is pruned
globally by L1 to ``--ratio`` fewer MACs with every ``--variants`` value:
``1``/``8``/``16``/``32`` (integer round_to), ``auto`` (the API's default:
the lane-width rule, no table) and ``auto_table`` (auto reading the host's
cached per-layer table from ``--tables``, as a latency-targeted run leaves
it). The dense model and all variants are timed in one interleaved run, as
:func:`pipeline.litert.ab.compare` times them (its primitives: every file
loaded together and run round-robin, the starting file rotating between
``--repeats`` repeats, 1-thread runs pinned to one CPU). Each repeat gives
two paired ratios per variant, dense / variant of the p50 and of the fastest
run (on a machine shared with other jobs the p50 carries their load; the
fastest run is the time without interference, as
:mod:`pipeline.latency.measure` argues) and, at 1 thread, of the median
thread CPU time (XNNPACK runs a 1-thread model in the calling thread, so
this leaves out the time other jobs held the CPU); the table shows the
median and the min-max over repeats. The ``.tflite`` files are kept in ``--outdir`` and
reused, so a second invocation re-times the same files (run-to-run spread).

A model name prefixed ``keras3:`` (``keras3:MobileNetV2``) is built from
``keras.applications`` instead and pruned through Keras 3's own graph (the
pruned model is a Keras 3 model, converted by the same TFLite converter), so
the two families' speed-ups at equal MACs can be compared.

It also prints, without timing, whether a small model of 8-64 channels
reaches 50% of MACs at each round_to.

Usage:
  .venv/bin/python bench/auto_alignment.py --threads=1,2 --repeats=5 \\
      --json=bench/results/auto_alignment.json
"""
import json
import os
import sys
import time

import numpy as np

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pipeline  # noqa: E402  (first: selects tf_keras)
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import keras  # noqa: E402
from pipeline import atomic  # noqa: E402
from pipeline.latency.config import LatencyConfig  # noqa: E402
from pipeline.litert import timing as profile  # noqa: E402

flags.DEFINE_list("models", ["MobileNetV2", "ResNet50"],
                  "tf_keras.applications names; prefix keras3: for keras.applications.")
flags.DEFINE_list("variants", ["1", "8", "16", "32", "auto", "auto_table"], "round_to values.")
flags.DEFINE_float("ratio", 0.5, "Fraction of MACs removed.")
flags.DEFINE_list("threads", ["1", "2"], "Thread counts.")
flags.DEFINE_integer("repeats", 5, "Interleaved timing repeats.")
flags.DEFINE_integer("min_runs", 30, "Minimum timed runs per file, thread count and repeat.")
flags.DEFINE_float("min_secs", 1.0, "Minimum seconds per file, thread count and repeat.")
flags.DEFINE_string("tables", "bench/results/latency_tables", "Cached host latency tables.")
flags.DEFINE_string("outdir", "/tmp/auto_alignment", "Where the .tflite files go.")
flags.DEFINE_string("json", "", "Write the results here too.")
flags.DEFINE_boolean("convert_only", False, "Build the files, do not time them.")
FLAGS = flags.FLAGS


def small_model():
    """A CNN whose prunable layers have 8 to 64 channels (the issue's small model)."""
    L = tf_keras.layers
    x = inputs = tf_keras.Input((32, 32, 3))
    for i, width in enumerate((8, 16, 32, 64, 32)):
        x = L.Conv2D(width, 3, padding="same", name=f"c{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    x = L.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inputs, L.Dense(10, name="head")(x))


def settings(variant: str) -> dict:
    if variant == "auto_table":
        return {"round_to": "auto", "latency": LatencyConfig(cache_dir=FLAGS.tables)}
    return {"round_to": variant if variant == "auto" else int(variant)}


def build(name: str) -> tuple[list[str], dict]:
    """The dense file and one per variant (reused when present); their facts."""
    family, _, arch = name.rpartition(":")
    K = keras if family == "keras3" else tf_keras
    folder = os.path.join(FLAGS.outdir, name.replace(":", "_"))
    os.makedirs(folder, exist_ok=True)
    meta_path = os.path.join(folder, "meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    labels = ["dense"] + [f"rt_{v}" for v in FLAGS.variants]
    model = None
    for label in labels:
        path = os.path.join(folder, label + ".tflite")
        if label in meta and os.path.exists(path):
            continue
        if model is None:
            K.utils.set_random_seed(0)
            model = getattr(K.applications, arch)(weights=None, input_shape=(224, 224, 3))
        facts = {"macs": pipeline.count_macs(model)}
        target = model
        if label != "dense":
            result = pipeline.prune(model, FLAGS.ratio, target="macs", criterion="l1",
                                    scope="global", **settings(label[3:]))
            target = result.model
            facts = {"macs": pipeline.count_macs(target), "removed": result.plan.removed,
                     "alignment": result.plan.alignment,
                     "widths": sorted({(g.size, len(g.keep)) for g in result.plan.groups})}
        atomic.write_bytes(path, tf.lite.TFLiteConverter.from_keras_model(target).convert())
        meta[label] = facts
        atomic.write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
        print(f"[{name}] {label}: {facts.get('removed', {}).get('macs', 0):.3f} of MACs removed"
              f"{'; ' + facts['alignment']['summary'] if facts.get('alignment') else ''}",
              flush=True)
    return [os.path.join(folder, l + ".tflite") for l in labels], meta


def reachability() -> dict:
    model = small_model()
    out = {}
    for variant in ("1", "8", "16", "32", "auto"):
        try:
            plan = pipeline.prune(model, 0.5, dry_run=True, **settings(variant)).plan
            out[variant] = {"macs_removed": plan.removed["macs"],
                            "alignment": plan.alignment and plan.alignment["summary"]}
        except pipeline.TargetError as e:
            out[variant] = {"error": str(e)}
        print(f"[8-64 channels] round_to={variant}: {out[variant]}", flush=True)
    return out


def interleaved(sessions, min_runs: int, min_secs: float):
    """:func:`pipeline.litert.timing.time_interleaved`'s rounds, also timing this thread's CPU."""
    wall, cpu = [[] for _ in sessions], [[] for _ in sessions]
    start = time.perf_counter()
    while len(wall[0]) < min_runs or time.perf_counter() - start < min_secs * len(sessions):
        for session, w, c in zip(sessions, wall, cpu):
            before = time.thread_time_ns()
            w.append(session.run_ms())
            c.append((time.thread_time_ns() - before) / 1e6)
    return wall, cpu


def paired(paths: list[str], threads: int, repeats: int, config) -> dict:
    """Per file and repeat: p50 and fastest wall ms, p50 thread-CPU ms (1 thread); paired ratios.

    With one thread, XNNPACK runs in the calling thread, so its CPU time is the
    inference without the time other jobs held the CPU (cache and memory
    sharing with them still count); with two, only wall time is latency.
    """
    stats = ("p50_ms", "min_ms") + (("cpu_p50_ms",) if threads == 1 else ())
    runs = {p: {s: [] for s in stats} for p in paths}
    for repeat in range(repeats):
        order = [paths[(repeat + i) % len(paths)] for i in range(len(paths))]
        with profile.placement(threads, config.pin_single_thread):
            sessions = [profile.Session(p, threads, config.use_xnnpack, config.seed)
                        for p in order]
            for session in sessions:
                session.warm_up(config.warmup_runs)
            wall, cpu = interleaved(sessions, config.min_runs, config.min_secs)
        for path, t, c in zip(order, wall, cpu):
            runs[path]["p50_ms"].append(float(np.median(t)))
            runs[path]["min_ms"].append(float(np.min(t)))
            if threads == 1:
                runs[path]["cpu_p50_ms"].append(float(np.median(c)))
    base = runs[paths[0]]
    for path in paths:
        for stat in stats:
            ratios = np.asarray(base[stat]) / np.asarray(runs[path][stat])
            runs[path][stat.replace("_ms", "_speedup")] = [float(np.median(ratios)),
                                                          float(ratios.min()), float(ratios.max())]
    return runs


def table(name: str, threads: int, runs: dict) -> str:
    stats = [s for s in ("p50_ms", "min_ms", "cpu_p50_ms") if s in next(iter(runs.values()))]
    head = " | ".join(f"{threads}T {s[:-3]} ms | speed-up ({s[:-3]})" for s in stats)
    rows = [f"| model | variant | {head} |", "|---|---|" + "---|---|" * len(stats)]
    for path, r in runs.items():
        cells = []
        for s in stats:
            x = r[s.replace("_ms", "_speedup")]
            cells += [f"{np.median(r[s]):.2f}", f"{x[0]:.2f}x ({x[1]:.2f}-{x[2]:.2f})"]
        rows.append(f"| {name} | {os.path.basename(path)[:-7]} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv):
    del argv
    report = {"small_model_50pct": reachability()}
    threads = tuple(int(t) for t in FLAGS.threads)
    config = profile.ProfileConfig(threads=threads, min_runs=FLAGS.min_runs,
                                   min_secs=FLAGS.min_secs)
    for name in FLAGS.models:
        paths, meta = build(name)
        tf_keras.backend.clear_session()
        keras.backend.clear_session()
        if FLAGS.convert_only:
            continue
        report[name] = {"meta": meta, "timing": {}}
        for t in threads:
            runs = paired(paths, t, FLAGS.repeats, config)
            print(table(name, t, runs), flush=True)
            report[name]["timing"][str(t)] = runs
    if FLAGS.json:
        atomic.write_text(FLAGS.json, json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
