"""Checks that the run can succeed before any stage trains or writes an artifact.

``config_check`` has already vetted the config's values; this module checks
what they point at: the workdir can be created and written, ``model.path``
is a loadable functional model whose input and classes match the data (the
data were loaded at its declared input, see :mod:`pipeline.run.model_input`), the
model has prunable layers that the pruner can follow, and the pruning
target is reachable under ``min_filters`` and ``ignore`` at ``round_to``
or a finer step (:mod:`pipeline.run.alignment`, as the prune stage does). The
untrained architecture stands in when the baseline is trained, so a bad
target fails in seconds, not after the baseline's epochs.

Example:
  >>> from pipeline.run import preflight
  >>> preflight.check_workdir("/tmp/run")
  >>> model = preflight.load_model(config.model)  # None without model.path
  >>> preflight.check_model(config, datasets, model)  # raises a PruningError subclass
"""
from __future__ import annotations

import os

import models
from pipeline import api
from pipeline.data.loaders import DataError
from pipeline.errors import UnsupportedModelError, WorkdirError
from pipeline.pruning.channels import analyse
from pipeline.run import alignment, model_file, prune_settings
from pipeline.training import heads

_PROBE = ".write-probe"
# Targets a dry-run plan can check; ``latency`` measures candidate models, checked as it runs.
_COUNTED = ("macs", "filters")


def check_workdir(workdir: str) -> None:
    """Creates ``workdir`` and writes (then removes) a probe file in it.

    Raises:
      WorkdirError: the directory cannot be created or written.
    """
    path = os.path.abspath(workdir)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise WorkdirError(f"cannot create workdir {path}: {e.strerror or e}; pass a "
                           "--workdir that can be created (its parent must be a writable "
                           "directory)") from e
    probe = os.path.join(path, _PROBE)
    try:
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as e:
        raise WorkdirError(f"cannot write in workdir {path}: {e.strerror or e}; fix its "
                           "permissions or free space, or pass another --workdir") from e


def load_model(model_section):
    """``model.path`` loaded (shared by the data, the checks and the baseline), or None.

    Raises:
      ModelFileError: ``model.path`` is missing, empty, not a model or damaged.
    """
    return model_file.load(model_section.path) if model_section.path else None


def check_model(config, datasets, model=None) -> None:
    """Checks the model to prune against the data and the target.

    Args:
      config: the whole config.
      datasets: the data stage's :class:`pipeline.data.datasets.Datasets`.
      model: :func:`load_model`'s model (None: ``model.path`` is loaded, or
        ``model.name`` built untrained, here).

    Raises:
      ModelFileError: ``model.path`` is missing, empty, not a model or damaged.
      UnsupportedModelError: subclassed, shared layer, or nothing to prune.
      UnsupportedLayerError: a layer class without a handler.
      DataError: the model's input or classes do not match the data.
      TargetError: the pruning target is unreachable under the constraints.
    """
    path = config.model.path
    if model is None and path:
        model = model_file.load(path)
    elif model is None:
        model = models.build(config.model.name, datasets.input_shape, datasets.num_classes,
                             width=config.model.width, dropout=config.model.dropout)
    where = path or f"model.name={config.model.name!r}"
    p = config.prune
    analysis = analyse(model, tuple(p.ignore))  # refuses subclassed models, shared layers
    _check_matches_data(model, datasets, where, config.model)
    if not analysis.groups:
        raise UnsupportedModelError(
            f"{where} has no prunable layer (no Conv or Dense layer whose output channels "
            f"can be removed{', with ignore=' + repr(list(p.ignore)) if p.ignore else ''}); "
            "prune a model with hidden Conv/Dense layers or shorten prune.ignore")
    _check_reachable(model, p, config.seed)


def _check_matches_data(model, datasets, where: str, model_section) -> None:
    have, data = tuple(model.input_shape[1:]), tuple(datasets.input_shape)
    # None (any size) matches; the data were loaded at the model's shape unless overridden.
    if len(have) != len(data) or any(h not in (None, d) for h, d in zip(have, data)):
        raise DataError(f"{where} takes inputs {have} but the data yields {data} "
                        f"(model.input_size={model_section.input_size}, "
                        f"model.channels={model_section.channels}); set them to 0 to load "
                        "the data at the model's input, or to the model's size and channels")
    # Several heads: the classifier is model.output, or the one of the data's width.
    index = heads.classifier_output(model, datasets.num_classes,
                                    model_section.output, where)
    outputs = model.outputs[index].shape[-1]
    if outputs != datasets.num_classes:
        raise DataError(f"{where} has {outputs} output classes but the data has "
                        f"{datasets.num_classes} ({', '.join(datasets.class_names[:5])}...); "
                        "use data with the model's classes or a model trained on this data")


def _check_reachable(model, p, seed: int) -> None:
    """A dry-run plan (by L1: reachability depends on the constraints, not the scores).

    At ``round_to`` or, like the prune stage, the coarsest finer step that reaches.
    """
    if p.target not in _COUNTED:
        return
    config = prune_settings.prune_config(p, seed, criterion="l1")
    alignment.reach(lambda step: api.plan_pruning(model, config, round_to=step),
                    config.round_to, p.target)
