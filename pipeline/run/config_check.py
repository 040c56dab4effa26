"""Checks a pipeline config's values before any stage runs.

``config_flags`` already rejects unknown keys and wrong types; this module
rejects values out of range or names that no registry knows, with one line
that names the key, the value and what is allowed.

Example:
  >>> from configs import default
  >>> check(default.get_config())  # raises ConfigError on a bad value
"""
from __future__ import annotations

import os
import re

import models
from pipeline import keras_api
from pipeline.data import loaders
from pipeline.data import preprocess as preprocessing
from pipeline.errors import PruningError
from pipeline.export import variants as export
from pipeline.latency import allocate as latency_alloc
from pipeline.latency import refine  # noqa: F401  (registers the latency target)
from pipeline.pruning import criteria, selection, targets
from pipeline.training import distribute
from pipeline.training.fit import OPTIMIZERS, Recipe


_PREPROCESS_ARGUMENTS = re.compile(r"(?<![\w.\-])(preprocess|mean|std)=")


class ConfigError(PruningError):
    """A config value is out of range or unknown."""


def check(config) -> None:
    """Raises :class:`ConfigError` on the first bad value of ``config``."""
    _one_of("distribute", config.distribute, distribute.names())
    if not config.model.path:
        _one_of("model.name", config.model.name, models.names())
        _one_of("model.keras", config.model.keras, keras_api.PACKAGES)
    _check_strategy_and_keras(config)
    _one_of("data.name", config.data.name, loaders.loader_names())
    _one_of("prune.target", config.prune.target, targets.names())
    _one_of("prune.scope", config.prune.scope, selection.SCOPES)
    _one_of("prune.criterion", config.prune.criterion, criteria.criterion_names())
    for section in ("train", "finetune"):
        _one_of(f"{section}.optimizer", config[section].optimizer, OPTIMIZERS)
        _at_least(f"{section}.epochs", config[section].epochs, 0)
        _positive(f"{section}.lr", config[section].lr)
        try:
            Recipe.from_config(config[section])
        except PruningError as e:
            raise ConfigError(f"config.{section}: {e}") from e
    for name in config.export.variants:
        _one_of("export.variants", name, export.variant_names())
    if len(set(config.export.variants)) != len(config.export.variants):
        raise ConfigError(f"export.variants lists a name twice: {list(config.export.variants)}")
    _one_of("export.int8_input", config.export.int8_input, ("uint8", "int8"))
    _at_least("export.calibration_samples", config.export.calibration_samples, 1)
    _at_least("export.sparse_epochs", config.export.sparse_epochs, 1)
    _at_least("export.sparse_steps", config.export.sparse_steps, 0)
    _positive("export.sparse_lr", config.export.sparse_lr)
    _in_range("export.block_sparsity", config.export.block_sparsity, 0.0, 1.0, closed_high=False)
    _at_least("export.verify_examples", config.export.verify_examples, 1)
    _positive("export.float_rtol", config.export.float_rtol)
    _in_range("export.int8_min_agreement", config.export.int8_min_agreement, 0.0, 1.0)
    for threads in config.evaluate.latency_threads:
        _at_least("evaluate.latency_threads", threads, 1)
    _at_least("evaluate.latency_min_secs", config.evaluate.latency_min_secs, 0)
    _check_ratio(config.prune.ratio)
    _in_range("data.val_split", config.data.val_split, 0.0, 1.0, closed_high=False)
    _in_range("finetune.alpha", config.finetune.alpha, 0.0, 1.0)
    _positive("finetune.temperature", config.finetune.temperature)
    _check_round_to(config.prune.round_to)
    _at_least("finetune.iterations", config.finetune.iterations, 1)
    _check_latency(config)
    _at_least("sensitivity.max_batches", config.sensitivity.max_batches, 0)
    for ratio in config.sensitivity.ratios:
        if not 0 < ratio < 1:
            raise ConfigError(f"config.sensitivity.ratios holds {ratio!r}; each must be in (0, 1)")
    _at_least("prune.min_filters", config.prune.min_filters, 1)
    _at_least("train.batch_size", config.train.batch_size, 1)
    _at_least("model.input_size", config.model.input_size, 0)
    _positive("model.width", config.model.width)
    _in_range("model.dropout", config.model.dropout, 0.0, 1.0, closed_high=False)
    _one_of("model.channels", config.model.channels, (0, 1, 3))
    _check_preprocess(config.model)
    for key in ("data.subset", "data.test_subset", "data.shift", "data.memory_mb"):
        section, name = key.split(".")
        _at_least(key, config[section][name], 0)


def _check_preprocess(model) -> None:
    """``model.preprocess`` (with ``model.mean``/``model.std``) names a valid preprocessing."""
    _one_of("model.preprocess", model.preprocess, preprocessing.preprocess_names())
    try:
        preprocessing.from_settings(model.preprocess, model.mean, model.std)
    except PruningError as e:  # the library names its arguments: spell them as keys
        raise ConfigError(_PREPROCESS_ARGUMENTS.sub(r"config.model.\1=", str(e))) from e


def _check_latency(config) -> None:
    """``prune.latency``: a readable device table, a tolerance, a utility, one prune step."""
    settings = config.prune.get("latency")
    if config.prune.target != "latency" or settings is None:
        return
    _in_range("prune.latency.tolerance", settings.tolerance, 0.0, 1.0, closed_high=False)
    _positive("prune.latency.tolerance", settings.tolerance)
    _at_least("prune.latency.max_iterations", settings.max_iterations, 1)
    if "utility" in settings:
        _one_of("prune.latency.utility", settings.utility, tuple(latency_alloc.UTILITIES))
    if settings.table and not os.path.isfile(settings.table):
        raise ConfigError(f"config.prune.latency.table={settings.table!r}: file not found; pass a "
                          "table JSON measured on the device, or '' to measure on this host")
    if config.finetune.iterations > 1:
        raise ConfigError(f"config.finetune.iterations={config.finetune.iterations} with "
                          "prune.target=latency: iterative latency pruning is not supported; "
                          "set finetune.iterations=1")


def _check_strategy_and_keras(config) -> None:
    """Raises :class:`ConfigError` for ``distribute=multi_worker`` with a Keras 3 model.

    Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy`` on the
    TensorFlow backend (keras-team/keras#20585, open; here: "Attempt to convert
    a value (PerReplica...) to a Tensor" in its first step), so the run refuses
    before any worker starts. The model's Keras is read from the file's
    metadata, which needs no TensorFlow op (the strategy must come first).
    """
    if config.distribute != "multi_worker":
        return
    path = config.model.path
    keras3 = (keras_api.file_package(path) == "keras" if path and os.path.exists(path)
              else not path and config.model.keras == "keras")
    if keras3:
        what = f"model.path={path!r} is a Keras 3 model" if path else "model.keras='keras'"
        raise ConfigError(
            f"config.distribute='multi_worker' cannot train Keras 3 models and {what}: Keras "
            "3's fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); use "
            "distribute='mirrored' (the devices of one machine) or 'none', or a tf_keras model")


def _one_of(key, value, allowed) -> None:
    if value not in allowed:
        shown = ", ".join(str(a) for a in allowed)
        raise ConfigError(f"config.{key}={value!r} is not one of: {shown}")


def _in_range(key, value, low, high, closed_high=True) -> None:
    ok = low <= value <= high if closed_high else low <= value < high
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ConfigError(f"config.{key}={value!r} must be in [{low}, {high}{bracket}")


def _check_ratio(value) -> None:
    """``prune.ratio``: a number in [0, 1), or a tuple of distinct numbers in (0, 1) (a family,
    :mod:`pipeline.run.family`)."""
    if isinstance(value, (tuple, list)):
        shown = repr(tuple(value))
        if not value:
            raise ConfigError("config.prune.ratio=() is empty; give one ratio (0.5) or several, "
                              "e.g. --config.prune.ratio='(0.3, 0.5, 0.7)'")
        for ratio in value:
            if not _is_number(ratio) or not 0 < ratio < 1:
                raise ConfigError(f"config.prune.ratio={shown} holds {ratio!r}; each ratio of "
                                  "a tuple must be a number in (0, 1)")
        twice = [r for i, r in enumerate(value) if r in value[:i]]
        if twice:
            raise ConfigError(f"config.prune.ratio={shown} lists {twice[0]!r} twice; give "
                              "each ratio once")
        return
    if not _is_number(value):
        raise ConfigError(f"config.prune.ratio={value!r} must be a number in [0, 1) or a tuple "
                          "of them, e.g. --config.prune.ratio='(0.3, 0.5, 0.7)'")
    _in_range("prune.ratio", value, 0.0, 1.0, closed_high=False)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_round_to(value) -> None:
    """``prune.round_to`` is ``"auto"`` or an integer >= 1 (the field takes both)."""
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"config.prune.round_to={value!r} must be 'auto' or an integer >= 1")
    _at_least("prune.round_to", value, 1)


def _at_least(key, value, low) -> None:
    if value < low:
        raise ConfigError(f"config.{key}={value!r} must be >= {low}")


def _positive(key, value) -> None:
    if not value > 0:
        raise ConfigError(f"config.{key}={value!r} must be > 0")
