"""The Keras families a model can come from (tf_keras, Keras 3), behind one interface.

:func:`family_of` picks the family of a model from its classes. The tf_keras
family loads with this package; the Keras 3 one on first sight of a Keras 3
object, so that ``import pipeline`` does not import Keras 3 for tf_keras users.
Loading a family registers its classes for every handler declared by name
(:func:`pipeline.pruning.handlers.base.declare`).

Example:
  >>> import keras
  >>> family_of(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])).name
  'keras 3'
"""
from __future__ import annotations

import importlib

from pipeline.errors import UnsupportedModelError
from pipeline.keras_api import package_of
from pipeline.pruning.families.base import Call, Family
from pipeline.pruning.handlers import base as _handlers
from pipeline.pruning.handlers import ops as _ops

# Top-level package of a class's module -> the module of its family.
_MODULES = {"tf_keras": "pipeline.pruning.families.legacy",
            "keras": "pipeline.pruning.families.keras3"}
_LOADED: dict[str, Family] = {}


def family_of(obj) -> Family:
    """The family of a Keras model or layer.

    Raises:
      UnsupportedModelError: ``obj`` is not a Keras object of either family.
    """
    family = for_class(type(obj))
    if family is not None and family.owns(obj):
        return family
    raise UnsupportedModelError(
        f"expected a Keras model (tf_keras or Keras 3), got "
        f"{type(obj).__module__}.{type(obj).__name__}")


def load(package: str) -> Family:
    """The family of top-level package ``package`` (``"tf_keras"``/``"keras"``), loaded once."""
    if package not in _LOADED:
        module = importlib.import_module(_MODULES[package])
        family = _LOADED[package] = module.FAMILY
        _handlers.add_family(family.resolve)
        for cls in getattr(module, "operation_classes", lambda: [])():
            _ops.keep_whole(cls)
    return _LOADED[package]


def for_class(cls: type) -> Family | None:
    """The family of a layer class, loading it if needed; None for a foreign class."""
    package = package_of(cls)
    return load(package) if package else None


load("tf_keras")

__all__ = ["Call", "Family", "family_of", "for_class", "load", "package_of"]
