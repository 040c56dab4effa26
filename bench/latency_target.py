"""target="latency" against its budget, and against MACs-targeted pruning at equal latency.

For each model and each ratio (fraction of the measured latency removed):
prune with ``target="latency"`` (the per-layer table is cached in
``--cache_dir``, so the first ratio of a model pays for it) and record the
budget, the predicted and the measured latency (1 thread, pinned, XNNPACK;
fastest of the timed runs, see ``pipeline.latency.measure``), the rounds
taken and the MACs removed.

For the default model (the shipped Fashion-MNIST baseline) also: find the
MACs ratio whose global-L1 pruning (``--macs_round_to``) measures the same
latency (bisection on the measured latency ratio), fine-tune both pruned
models with the default config's fine-tuning recipe once per ``--seeds``
seed, and compare test accuracy (mean and each seed). The latency ratio of
both final models is timed once more, back to back, against the baseline.

Models: ``MobileNetV2`` and ``ResNet50`` at 224x224 with random weights, and
``default``. ``--quick`` shrinks everything to a smoke run (MobileNetV2
alpha 0.35 at 64x64, the default model on a 2,000-image subset, one ratio,
20 fine-tuning steps): 6.5 minutes here, on a core shared with 3 other jobs.

The full run builds two 224x224 tables (MobileNetV2 about 3 minutes,
ResNet50 longer; cached in ``--cache_dir`` for reruns), prunes 9 times and
fine-tunes the default model 6 times per seed (3 epochs of about 35 s each):
expect about 60-80 minutes with the 2 default seeds on one core.

Usage (the runs in BENCHMARKS.md; the two default-model runs side by side, one per core):
  taskset -c 1 .venv/bin/python bench/latency_target.py --models=MobileNetV2,ResNet50 \\
      --json=bench/results/latency_target_zoo.json
  taskset -c 0 .venv/bin/python bench/latency_target.py --models=default --seeds=0,1,2 \\
      --json=bench/results/latency_target_default.json
  taskset -c 1 .venv/bin/python bench/latency_target.py --models=default --seeds=0,1,2 \\
      --macs_round_to=16 --json=bench/results/latency_target_default_macs16.json
  taskset -c 0 .venv/bin/python bench/latency_target.py --quick --json=/tmp/latency_quick.json
"""
import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np

from absl import app, flags, logging

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pipeline  # noqa: E402  (first: selects tf_keras)
import tf_keras  # noqa: E402
from configs import default  # noqa: E402
from pipeline import atomic  # noqa: E402
from pipeline.latency import measure as latency_measure
from pipeline.run import stages
from pipeline.training import fit as train

flags.DEFINE_list("models", ["MobileNetV2", "ResNet50", "default"], "Models to run.")
flags.DEFINE_list("ratios", ["0.3", "0.5", "0.7"], "Fractions of the latency removed.")
flags.DEFINE_boolean("quick", False, "Smoke run: tiny models, one ratio, a few steps.")
flags.DEFINE_integer("epochs", 0, "Fine-tuning epochs (0 = the default config's).")
flags.DEFINE_list("seeds", ["0", "1"], "Fine-tuning seeds (each pair is fine-tuned once per seed).")
flags.DEFINE_string("utility", "log", "LatencyConfig.utility of the latency target.")
flags.DEFINE_integer("macs_round_to", 1, "round_to of the MACs-targeted baseline.")
flags.DEFINE_string("cache_dir", "bench/results/latency_tables", "Latency table cache.")
flags.DEFINE_string("json", "/tmp/latency_target.json", "Where the records go.")
FLAGS = flags.FLAGS

MATCH_TOLERANCE = 0.03  # MACs baseline: measured latency ratio within 3% (relative)


def _config():
    config = default.get_config()
    if FLAGS.quick:
        config.data.subset, config.data.test_subset = 2000, 500
        config.finetune.epochs = 1
    if FLAGS.epochs:
        config.finetune.epochs = FLAGS.epochs
    return config


def _model(name):
    if name == "default":
        return tf_keras.models.load_model(default.SHIPPED_BASELINE, compile=False)
    size = 64 if FLAGS.quick else 224
    kwargs = {"alpha": 0.35} if FLAGS.quick and name == "MobileNetV2" else {}
    return getattr(tf_keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                                **kwargs)


def _latency_run(name, model, ratio) -> tuple[dict, object]:
    start = time.time()
    result = pipeline.prune(model, ratio, target="latency",
                            latency=pipeline.LatencyConfig(cache_dir=FLAGS.cache_dir,
                                                           utility=FLAGS.utility))
    report = result.plan.report
    record = {"model": name, "ratio": ratio, "utility": FLAGS.utility,
              "widths": _widths(result.model),
              "budget_ms": report["budget_ms"],
              "full_ms": report["full_ms"], "predicted_ms": report["predicted_ms"],
              "measured_ms": report["measured_ms"], "error": report["error"],
              "rounds": len(report["rounds"]), "macs_removed": result.plan.removed["macs"],
              "latency_removed": result.plan.removed["latency"], "seconds": time.time() - start}
    return record, result.model


def _widths(model) -> list[int]:
    """Output channels of every layer with weights (batch norms included), in order."""
    return [l.output_shape[-1] for l in model.layers if l.count_params()]


def _matching_macs(model, measured_ratio) -> tuple[float, object, float]:
    """The MACs ratio whose global-L1 model measures ``measured_ratio`` of the latency."""
    timer = latency_measure.ModelTimer(model)
    lo, hi, best = 0.0, 0.95, None
    try:
        for _ in range(8):
            mid = (lo + hi) / 2 if best else 1 - measured_ratio
            try:
                pruned = pipeline.prune(model, mid, target="macs", criterion="l1",
                                        round_to=FLAGS.macs_round_to).model
            except pipeline.TargetError:  # more MACs than min_filters allows: aim lower
                hi = mid
                continue
            got = timer.compare(pruned).ratio
            if best is None or abs(got - measured_ratio) < abs(best[2] - measured_ratio):
                best = (mid, pruned, got)
            if abs(got - measured_ratio) <= MATCH_TOLERANCE * measured_ratio:
                break
            lo, hi = (mid, hi) if got > measured_ratio else (lo, mid)
    finally:
        timer.close()
    return best


def _finetune(model, datasets, config) -> dict:
    recipe = train.Recipe.from_config(config.finetune)
    train.compile_model(model, recipe, datasets.steps_per_epoch)
    before = train.evaluate(model, datasets.test)["accuracy"]
    if FLAGS.quick:
        datasets = dataclasses.replace(datasets, steps_per_epoch=20)
    with tempfile.TemporaryDirectory() as scratch:
        train.fit(model, datasets, recipe, scratch, verbose=0)
    return {"accuracy_before": before, "accuracy": train.evaluate(model, datasets.test)["accuracy"]}


def _accuracy_pair(record, base, latency_model, datasets, config) -> dict:
    ratio, macs_model, macs_latency = _matching_macs(base, 1 - record["latency_removed"])
    timer = latency_measure.ModelTimer(base)
    try:
        final = {"latency": timer.compare(latency_model).ratio,
                 "macs": timer.compare(macs_model).ratio}
    finally:
        timer.close()
    tuned = {"latency_target": [], "macs_target": []}
    for seed in (int(x) for x in FLAGS.seeds):
        for key, model in (("latency_target", latency_model), ("macs_target", macs_model)):
            tf_keras.utils.set_random_seed(seed)
            copy = tf_keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            tuned[key].append(dict(_finetune(copy, datasets, config), seed=seed))
    return {"macs_ratio_matched": ratio, "macs_latency_ratio": macs_latency,
            "macs_round_to": FLAGS.macs_round_to,
            "macs_widths": _widths(macs_model),
            "final_latency_ratio": final, "finetune_epochs": config.finetune.epochs,
            **{k: dict(runs=v, accuracy=float(np.mean([r["accuracy"] for r in v])))
               for k, v in tuned.items()}}


def _table(records) -> str:
    rows = ["| model | removed | budget (ms) | measured (ms) | error | rounds | MACs removed "
            "| acc. latency-target | acc. MACs-target (same latency) |", "|---" * 9 + "|"]
    for r in records:
        pair = r.get("accuracy") or {}
        acc = (lambda k: f"{100 * pair[k]['accuracy']:.2f}% ("
               + "/".join(f"{100 * run['accuracy']:.2f}" for run in pair[k]["runs"]) + ")"
               if k in pair else "-")
        rows.append(f"| {r['model']} | {r['ratio']:.0%} | {r['budget_ms']:.3f} | "
                    f"{r['measured_ms']:.3f} | {r['error']:.1%} | {r['rounds']} | "
                    f"{r['macs_removed']:.1%} | {acc('latency_target')} | {acc('macs_target')} |")
    return "\n".join(rows)


def _datasets(config):
    """The run's data stage on ``config``: its train/val/test pipelines."""
    return stages.load_data(config.data, input_size=config.model.input_size,
                            channels=config.model.channels, batch_size=config.train.batch_size,
                            seed=config.seed).datasets


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # the converter logs every single-layer model
    ratios = [0.5] if FLAGS.quick else [float(r) for r in FLAGS.ratios]
    models = ["MobileNetV2", "default"] if FLAGS.quick and FLAGS.models == flags.FLAGS[
        "models"].default else FLAGS.models
    config = _config()
    datasets = _datasets(config) if "default" in models else None
    records = []
    for name in models:
        base = _model(name)
        for ratio in ratios:
            record, pruned = _latency_run(name, base, ratio)
            if name == "default":
                record["accuracy"] = _accuracy_pair(record, base, pruned, datasets, config)
            records.append(record)
            print(json.dumps(record), flush=True)
            os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json)), exist_ok=True)
            atomic.write_text(FLAGS.json, json.dumps(
                {"quick": FLAGS.quick, "device": latency_measure.host_device(),
                 "records": records}, indent=1) + "\n")
    print(_table(records))


if __name__ == "__main__":
    app.run(main)
