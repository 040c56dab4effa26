r"""The pipeline's entry point: train or load, scan, prune, fine-tune, export, evaluate, report.

  python -m pipeline.main --config=configs/default.py --workdir=/tmp/prune_fmnist
  python -m pipeline.main --config=configs/default.py:quick --workdir=/tmp/q \
      --config.prune.ratio=0.6
  prune-pipeline --config=configs/default.py --workdir=/tmp/prune_fmnist --restart

A stage whose output already exists in the workdir with a matching config
hash is skipped; ``--restart`` redoes every stage. A bad config value, model
file, data set, target or workdir stops the run before any work with one
line on stderr and exit status 1 (``--verbosity=1`` adds the traceback); so
does a full disk. Ctrl-C or SIGTERM stops it with status 130/143, keeping
finished stages and the last epoch's checkpoint: rerun to resume.

``--config.distribute=multi_worker`` trains across the processes named in
``TF_CONFIG`` (every worker runs the same command; only the chief writes the
workdir); see :mod:`pipeline.training.distribute` and the README.
"""
from __future__ import annotations

import json
import logging
import sys
import traceback

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from pipeline.run import config_check
from pipeline.training import distribute
from pipeline.run import signals as guard
from pipeline.run import preflight
from pipeline.run import stages
from pipeline.errors import PruningError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Pipeline config file, e.g. configs/default.py or configs/default.py:quick.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every artifact of the run.")
_RESTART = flags.DEFINE_bool("restart", False, "Redo every stage, ignoring finished outputs.")
# Required, but checked in parse_flags rather than by absl's validator: tests and tools
# parse absl's global flags in the same process (pipeline.cli), where a required
# validator of this module would fail them.
_REQUIRED = ("config", "workdir")


@guard.disk_errors()
def run_pipeline(config, workdir: str, restart: bool = False) -> dict:
    """Runs every stage on ``config`` in ``workdir``; returns the report.

    Raises:
      PruningError: a bad config value, missing data, an unprunable model, an
        unwritable workdir... (checked before any stage runs, see
        :mod:`pipeline.run.preflight`); ``guard.DiskFullError`` when the disk fills up.

    Example:
      >>> from configs import default
      >>> report = run_pipeline(default.get_config("quick"), "/tmp/prune_quick")
      >>> report["variants"][1]["accuracy"]
    """
    config_check.check(config)
    cluster = distribute.setup(config.distribute)  # before any other TensorFlow op
    preflight.check_workdir(cluster.private_dir(workdir))
    store = cluster.store(workdir, restart)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    tf_keras.utils.set_random_seed(config.seed)
    datasets = stages.load_data(config)
    preflight.check_model(config, datasets)
    store.write_text("config.json", json.dumps(config.to_dict(), indent=1, sort_keys=True))
    with distribute.active(cluster):  # training (baseline, fine-tunes, sparse) under the strategy
        base = stages.baseline(config, datasets, store)
        # The scan trains nothing and feeds only the chief's report.
        curves = stages.sensitivity(config, base, datasets, store) if cluster.is_chief else None
        pruned, tuned = stages.prune_and_finetune(config, base, datasets, store)
        exported = stages.export_variants(config, {"baseline": base, "pruned": tuned},
                                          datasets, store)
    if not cluster.is_chief:  # what follows trains nothing, and only the chief reports
        cluster.finish(store)
        return {"distribute": cluster.record(), "chief": False}
    evaluations = stages.evaluate(config, exported, datasets, store)
    return stages.write_report(config, base, pruned, tuned, exported, evaluations, store,
                               sensitivity=curves, distribution=cluster.record())


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # TensorFlow's SavedModel and converter INFO lines would bury the stage output.
    tf.get_logger().setLevel(logging.WARNING)
    with guard.signals():
        try:
            run_pipeline(_CONFIG.value, _WORKDIR.value, _RESTART.value)
        except (PruningError, KeyboardInterrupt) as e:
            sys.exit(_fail(e))


def _fail(error: BaseException) -> int:
    """Prints the error as one line (after its traceback if --verbosity >= 1); the exit status."""
    if absl_logging.get_verbosity() >= 1:
        traceback.print_exception(error)
    if isinstance(error, KeyboardInterrupt):
        name = error.args[0] if error.args else "SIGINT"
        message = (f"interrupted by {name}; finished stages and the last finished epoch's "
                   f"checkpoint are kept in {_WORKDIR.value}: rerun the same command to resume")
    else:
        message = " ".join(str(error).split())
    print(f"prune-pipeline: error: {message}", file=sys.stderr, flush=True)
    return guard.exit_status(error)


def parse_flags(argv):
    """absl's flag parsing, with a bad flag or config override reported in one line.

    ``config_flags`` raises AttributeError/KeyError for an unknown key (with a
    "did you mean" hint) and flags.Error for a value of the wrong type.
    """
    try:
        rest = flags.FLAGS(argv)
        missing = [f"--{name}" for name in _REQUIRED if flags.FLAGS[name].value is None]
        if missing:
            print(f"prune-pipeline: error: {' and '.join(missing)} must be given, e.g. "
                  "--config=configs/default.py --workdir=workdir/default", file=sys.stderr)
            sys.exit(2)
        return rest
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
