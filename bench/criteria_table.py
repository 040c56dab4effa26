"""Criterion, scope and distillation compared at equal MACs on the default model.

Each run loads the shipped baseline (``models/weights/vgg_fashion_mnist.keras``),
prunes ``--ratio`` of its MACs with one (scope, criterion) pair, measures test
accuracy, fine-tunes with the default config's fine-tuning recipe for
``--epochs`` epochs (optionally distilling from the baseline) and measures test
accuracy again. Every setting runs once per seed; the seed fixes the shuffling
and augmentation order, the validation split, the ``random`` criterion and the
data batches that ``taylor`` scores on. Results go to ``--json`` as they come
(one record per run, so a killed run keeps what it finished) and a Markdown
table (median and min-max over seeds) is printed at the end.

Usage:
  .venv/bin/python bench/criteria_table.py --seeds=0,1 --epochs=1 \\
      --json=bench/results/criteria_table.json
"""
import json
import os
import statistics
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pipeline  # noqa: E402  (first: selects tf_keras)
import tf_keras  # noqa: E402
from configs import default  # noqa: E402
from pipeline import atomic  # noqa: E402
from pipeline.run import stages
from pipeline.training import fit as train

# (name, scope, criterion, distill): every criterion under global scope, the
# scope comparison under L1, and distillation on both L1 scopes.
SETTINGS = (
    ("global-l1", "global", "l1", False),
    ("global-l2", "global", "l2", False),
    ("global-bn_gamma", "global", "bn_gamma", False),
    ("global-fpgm", "global", "fpgm", False),
    ("global-taylor", "global", "taylor", False),
    ("global-random", "global", "random", False),
    ("layer-l1", "layer", "l1", False),
    ("global-l1+kd", "global", "l1", True),
    ("layer-l1+kd", "layer", "l1", True),
)

flags.DEFINE_list("seeds", ["0", "1"], "Seeds; every setting runs once per seed.")
flags.DEFINE_list("settings", [s[0] for s in SETTINGS], "Settings to run (names above).")
flags.DEFINE_float("ratio", 0.5, "Fraction of the baseline's MACs removed.")
flags.DEFINE_integer("round_to", 1, "Prunable channels per group rounded to a multiple of this.")
flags.DEFINE_integer("epochs", 1, "Fine-tuning epochs (the default recipe otherwise).")
flags.DEFINE_integer("subset", 0, "Training examples kept (0 = all; for smoke runs).")
flags.DEFINE_integer("test_subset", 0, "Test examples kept (0 = all; for smoke runs).")
flags.DEFINE_string("json", "bench/results/criteria_table.json", "Where the runs go.")
FLAGS = flags.FLAGS


def _config(seed: int):
    config = default.get_config()
    config.seed = seed
    config.data.subset = FLAGS.subset
    config.data.test_subset = FLAGS.test_subset
    config.finetune.epochs = FLAGS.epochs
    return config


def _run(setting, seed: int, datasets, baseline) -> dict:
    name, scope, criterion, distill = setting
    config = _config(seed)
    tf_keras.utils.set_random_seed(seed)
    start = time.time()
    result = pipeline.prune(baseline, FLAGS.ratio, target="macs", criterion=criterion,
                            scope=scope, round_to=FLAGS.round_to, data=datasets.train,
                            seed=seed)
    model = result.model
    recipe = train.Recipe.from_config(config.finetune)
    train.compile_model(model, recipe, datasets.steps_per_epoch)
    before = train.evaluate(model, datasets.test)["accuracy"]
    with tempfile.TemporaryDirectory() as scratch:
        fitted = train.fit(model, datasets, recipe, scratch,
                           teacher=baseline if distill else None,
                           temperature=config.finetune.temperature,
                           alpha=config.finetune.alpha, verbose=0)
    after = train.evaluate(model, datasets.test)["accuracy"]
    val = fitted.history.get("val_accuracy", [float("nan")])[-1]
    return {"setting": name, "scope": scope, "criterion": criterion, "distill": distill,
            "seed": seed, "round_to": FLAGS.round_to, "macs_removed": result.plan.removed.get("macs"),
            "params": pipeline.count_params(model), "macs": pipeline.count_macs(model),
            "accuracy_before": before, "accuracy": after, "val_accuracy": val,
            "epochs": fitted.epochs, "seconds": time.time() - start}


def _table(runs: list, baseline_accuracy: float) -> str:
    rows = ["| setting | MACs removed | before fine-tuning | after fine-tuning | "
            "vs baseline (pt) | seeds |", "|---|---|---|---|---|---|"]
    names = [s[0] for s in SETTINGS if any(r["setting"] == s[0] for r in runs)]
    for name in names:
        mine = [r for r in runs if r["setting"] == name]
        rows.append("| {} | {:.1%} | {} | {} | {:+.2f} | {} |".format(
            name, statistics.median(r["macs_removed"] for r in mine),
            _spread([r["accuracy_before"] for r in mine]),
            _spread([r["accuracy"] for r in mine]),
            100 * (statistics.median(r["accuracy"] for r in mine) - baseline_accuracy),
            len(mine)))
    return "\n".join(rows)


def _spread(values) -> str:
    values = [100 * v for v in values]
    return f"{statistics.median(values):.2f}% ({min(values):.2f}-{max(values):.2f})"


def _datasets(config):
    """The run's data stage on ``config``: its train/val/test pipelines."""
    return stages.load_data(config.data, input_size=config.model.input_size,
                            channels=config.model.channels, batch_size=config.train.batch_size,
                            seed=config.seed).datasets


def main(argv):
    del argv
    settings = [s for s in SETTINGS if s[0] in FLAGS.settings]
    unknown = set(FLAGS.settings) - {s[0] for s in SETTINGS}
    if unknown:
        sys.exit(f"criteria_table: unknown --settings {sorted(unknown)}; "
                 f"valid: {[s[0] for s in SETTINGS]}")
    runs = []
    if os.path.exists(FLAGS.json):  # resume: keep finished runs
        with open(FLAGS.json) as f:
            runs = json.load(f)["runs"]
    baseline_accuracy = None
    for seed in (int(s) for s in FLAGS.seeds):
        config = _config(seed)
        datasets = _datasets(config)
        baseline = tf_keras.models.load_model(default.SHIPPED_BASELINE, compile=False)
        train.compile_model(baseline, train.Recipe.from_config(_config(seed).finetune),
                            datasets.steps_per_epoch)
        baseline_accuracy = train.evaluate(baseline, datasets.test)["accuracy"]
        for setting in settings:
            if any(r["setting"] == setting[0] and r["seed"] == seed for r in runs):
                continue
            record = _run(setting, seed, datasets, baseline)
            runs.append(record)
            print(json.dumps(record), flush=True)
            os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json)), exist_ok=True)
            atomic.write_text(FLAGS.json, json.dumps(
                {"ratio": FLAGS.ratio, "epochs": FLAGS.epochs, "round_to": FLAGS.round_to,
                 "baseline_accuracy": baseline_accuracy, "runs": runs}, indent=1) + "\n")
    print(f"baseline test accuracy {baseline_accuracy:.2%}")
    print(_table(runs, baseline_accuracy))


if __name__ == "__main__":
    app.run(main)
