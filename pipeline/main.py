r"""The pipeline's entry point: train or load, scan, prune, fine-tune, export, evaluate, report.

  python -m pipeline.main --config=configs/default.py --workdir=/tmp/prune_fmnist
  python -m pipeline.main --config=configs/default.py:quick --workdir=/tmp/q \
      --config.prune.ratio=0.6
  python -m pipeline.main --config=configs/default.py --workdir=/tmp/family \
      --config.prune.ratio='(0.3, 0.5, 0.7)'   # a family: pipeline/run/family.py
  prune-pipeline --config=configs/default.py --workdir=/tmp/prune_fmnist --restart

With ``model.path`` the data are loaded at the model's declared input size
and channels (:mod:`pipeline.run.model_input`; ``model.input_size`` and
``model.channels`` override). A stage whose output already exists in the
workdir with a matching config hash is skipped; ``--restart`` redoes every
stage. A bad config value, model file, data set, target or workdir stops
the run before any work with one line on stderr and exit status 1
(``--verbosity=1`` adds the traceback); so does a full disk. Ctrl-C or
SIGTERM stops it with status 130/143, keeping finished stages and the last
epoch's checkpoint: rerun to resume.

A model that holds a layer TensorFlow 2.21's oneDNN kernels crash on in
training (:mod:`pipeline.training.traps`) makes the run restart itself, the
same command with ``TF_ENABLE_ONEDNN_OPTS=0``, once: finished stages are
kept, and the rest runs on TensorFlow's own kernels.

``--config.distribute=multi_worker`` trains across the processes named in
``TF_CONFIG`` (every worker runs the same command; only the chief writes the
workdir); see :mod:`pipeline.training.distribute` and the README.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import traceback

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from pipeline import keras_api
from pipeline.errors import PruningError
from pipeline.run import (config_check, config_errors, family, model_input, preflight, stages,
                          worker_store)
from pipeline.run import report as reporting
from pipeline.run import signals as guard
from pipeline.training import distribute, traps

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
    preflight.check_workdir(worker_store.private_dir(cluster, workdir))
    store = worker_store.open_store(cluster, workdir, restart)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras_api.set_random_seed(config.seed)
    # A model file declares its input: the data are loaded at its size and channels.
    loaded = preflight.load_model(config.model)
    input_size, channels = model_input.data_shape(config.model, loaded)
    data = stages.load_data(config.data, input_size=input_size, channels=channels,
                            batch_size=config.train.batch_size, seed=config.seed,
                            preprocess=config.model.preprocess, mean=tuple(config.model.mean),
                            std=tuple(config.model.std))
    preflight.check_model(family.checked(config), data.datasets, loaded)
    store.write_text("config.json", json.dumps(config.to_dict(), indent=1, sort_keys=True))
    seed, deterministic = config.seed, config.deterministic
    with cluster.peer_errors():  # training (baseline, fine-tunes, sparse) under the strategy
        base = stages.baseline(config.model, config.train, data, store, seed=seed,
                               deterministic=deterministic, cluster=cluster, loaded=loaded)
        # The scan trains nothing and feeds only the chief's report.
        curves = (stages.sensitivity(config.sensitivity, config.prune, base, data, store,
                                     seed=seed, output=config.model.output)
                  if cluster.is_chief else None)
        if family.ratios(config.prune):  # a tuple: one model per ratio, run/family.py
            return family.run(config, base, data, store, curves=curves, cluster=cluster,
                              model_name=model_name(config.model))
        pruning = stages.prune_and_finetune(
            config.prune, config.finetune, base, data, store, seed=seed,
            deterministic=deterministic, cluster=cluster, output=config.model.output)
        exported = stages.export_variants(
            config.export, {"baseline": base, "pruned": pruning.tuned}, data, store,
            model_name=model_name(config.model), data_name=config.data.name, seed=seed,
            cluster=cluster, output=config.model.output)
    if not cluster.is_chief:  # what follows trains nothing, and only the chief reports
        worker_store.finish(cluster, store)
        return {"distribute": cluster.record(), "chief": False}
    evaluations = stages.evaluate(config.evaluate, exported, data, store)
    return stages.write_report(config.to_dict(), base, pruning, exported, evaluations, store,
                               sensitivity=curves, distribution=cluster.record())


def model_name(model_section) -> str:
    """What the TFLite metadata calls the model: ``model.path``'s file name without its
    extension (``fer2013_mini_XCEPTION``), else ``model.name``."""
    path = str(model_section.path).rstrip("/\\")
    return os.path.splitext(os.path.basename(path))[0] if path else model_section.name


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # TensorFlow's SavedModel and converter INFO lines would bury the stage output.
    tf.get_logger().setLevel(logging.WARNING)
    with guard.signals():
        try:
            report = run_pipeline(_CONFIG.value, _WORKDIR.value, _RESTART.value)
        except traps.OneDnnTrapError as e:
            _restart_without_onednn(e)
        except (PruningError, KeyboardInterrupt) as e:
            sys.exit(_fail(e))
    for line in reporting.failures(report):
        print(f"prune-pipeline: variant failed: {line}", file=sys.stderr, flush=True)
    for line in reporting.ratio_failures(report):
        print(f"prune-pipeline: ratio failed: {line}", file=sys.stderr, flush=True)
    sys.exit(reporting.exit_status(report))


def _restart_without_onednn(error: traps.OneDnnTrapError) -> None:
    """Replaces this process by the same command with oneDNN off (it is read at TF's import).

    Finished stages are stamped in the workdir, so the new process skips them;
    ``--restart`` is dropped so that they stay finished.
    """
    layers = ", ".join(t.layer for t in error.traps[:3])
    print(f"prune-pipeline: {layers}: TensorFlow's oneDNN kernels crash when training such "
          f"layers; restarting with {traps.ENV}=0 (finished stages are kept)",
          file=sys.stderr, flush=True)
    argv = [a for a in sys.argv[1:] if a not in ("--restart", "--restart=true", "--restart=True")]
    os.execve(sys.executable, [sys.executable, "-m", "pipeline.main", *argv],
              dict(os.environ, **{traps.ENV: "0"}))


def _fail(error: BaseException) -> int:
    """Prints the error as one line (after its traceback if --verbosity >= 1); the exit status."""
    if absl_logging.get_verbosity() >= 1:
        traceback.print_exception(error)
    if isinstance(error, KeyboardInterrupt):
        name = error.args[0] if error.args else "SIGINT"
        message = (f"interrupted by {name}; finished stages and the last finished epoch's "
                   f"checkpoint are kept in {_WORKDIR.value}: rerun the same command to resume")
    else:  # a library error names its Python argument: say the config key that sets it
        message = " ".join(config_errors.spelled(error).split())
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
