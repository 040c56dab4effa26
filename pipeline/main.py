r"""The pipeline's entry point: train or load, scan, prune, fine-tune, export, evaluate, report.

  python -m pipeline.main --config=configs/default.py --workdir=/tmp/prune_fmnist
  python -m pipeline.main --config=configs/default.py:quick --workdir=/tmp/q \
      --config.prune.ratio=0.6
  prune-pipeline --config=configs/default.py --workdir=/tmp/prune_fmnist --restart

A stage whose output already exists in the workdir with a matching config
hash is skipped; ``--restart`` redoes every stage. A bad config value stops
the run before any work with one line on stderr and exit status 1.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from absl import app, flags
from ml_collections import config_flags

from pipeline import config_check, stages
from pipeline.errors import PruningError
from pipeline.store import Store

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Pipeline config file, e.g. configs/default.py or configs/default.py:quick.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every artifact of the run.")
_RESTART = flags.DEFINE_bool("restart", False, "Redo every stage, ignoring finished outputs.")
flags.mark_flags_as_required(["config", "workdir"])


def run_pipeline(config, workdir: str, restart: bool = False) -> dict:
    """Runs every stage on ``config`` in ``workdir``; returns the report.

    Raises:
      PruningError: a bad config value, missing data, an unprunable model...

    Example:
      >>> from configs import default
      >>> report = run_pipeline(default.get_config("quick"), "/tmp/prune_quick")
      >>> report["variants"][1]["accuracy"]
    """
    config_check.check(config)
    store = Store(workdir, restart)
    store.write_text("config.json", json.dumps(config.to_dict(), indent=1, sort_keys=True))
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    tf_keras.utils.set_random_seed(config.seed)
    datasets = stages.load_data(config)
    with _strategy(config.distribute):
        base = stages.baseline(config, datasets, store)
        curves = stages.sensitivity(config, base, datasets, store)
        pruned, tuned = stages.prune_and_finetune(config, base, datasets, store)
    exported = stages.export_variants(config, {"baseline": base, "pruned": tuned}, datasets,
                                      store)
    evaluations = stages.evaluate(config, exported, datasets, store)
    return stages.write_report(config, base, pruned, tuned, exported, evaluations, store,
                               sensitivity=curves)


def _strategy(name: str):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy().scope()
    return contextlib.nullcontext()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # TensorFlow's SavedModel and converter INFO lines would bury the stage output.
    tf.get_logger().setLevel(logging.WARNING)
    try:
        run_pipeline(_CONFIG.value, _WORKDIR.value, _RESTART.value)
    except PruningError as e:
        print(f"prune-pipeline: error: {e}", file=sys.stderr)
        sys.exit(1)


def parse_flags(argv):
    """absl's flag parsing, with a bad flag or config override reported in one line.

    ``config_flags`` raises AttributeError/KeyError for an unknown key (with a
    "did you mean" hint) and flags.Error for a value of the wrong type.
    """
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as e:
        print(f"prune-pipeline: error: unknown config key {_one_line(e)}", file=sys.stderr)
    except (flags.Error, TypeError, ValueError) as e:
        print(f"prune-pipeline: error: {_one_line(e)}", file=sys.stderr)
    sys.exit(2)


def _one_line(error: BaseException) -> str:
    """The innermost message of a (chained) flag error, on one line, without a traceback."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    text = str(error.args[0]) if error.args else str(error)
    if "Traceback (most recent call last)" in text:  # config_flags embeds the file's traceback
        text = text.strip().splitlines()[-1]
    return " ".join(text.split())


def run():
    """Console script ``prune-pipeline``."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
