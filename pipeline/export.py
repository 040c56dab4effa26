"""Export variants: how a Keras model becomes a ``.tflite`` file, looked up by name.

A variant names its source model (``"baseline"`` or ``"pruned"``) and a
converter ``fn(model, context) -> bytes``. Built in: ``baseline_fp32`` and
``pruned_fp32`` (plain ``TFLiteConverter.from_keras_model``). Quantized or
sparse variants plug in with :func:`register_variant`; their converter gets
calibration images from the :class:`ExportContext`.

Example:
  >>> @register_variant("pruned_int8", source="pruned")
  ... def int8(model, context):
  ...     converter = tf.lite.TFLiteConverter.from_keras_model(model)
  ...     converter.optimizations = [tf.lite.Optimize.DEFAULT]
  ...     converter.representative_dataset = context.representative_dataset
  ...     return converter.convert()
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import tensorflow as tf

from pipeline.errors import PruningError, RegistryError

SOURCES = ("baseline", "pruned")


@dataclasses.dataclass(frozen=True)
class ExportContext:
    """What a converter may use besides the model.

    Attributes:
      calibration: unbatched ``(image, label)`` training examples, preprocessed.
      samples: how many of them a representative dataset should yield.
    """

    calibration: Any = None
    samples: int = 200

    def representative_dataset(self):
        """Yields ``[image_batch_of_1]`` lists, as ``TFLiteConverter`` expects."""
        if self.calibration is None:
            raise PruningError("this export variant needs calibration data; none was given")
        for image, _ in self.calibration.take(self.samples):
            yield [tf.expand_dims(image, 0)]


@dataclasses.dataclass(frozen=True)
class Variant:
    """A registered export variant."""

    name: str
    source: str
    convert: Callable[[Any, ExportContext], bytes]
    version: int = 1  # bump when the converter's output changes, so stamps expire


_VARIANTS: dict[str, Variant] = {}


def register_variant(name: str, source: str, version: int = 1):
    """Decorator registering ``convert(model, context) -> tflite bytes`` as ``name``.

    Args:
      name: the variant's name, used in ``export.variants`` and file names.
      source: ``"baseline"`` or ``"pruned"``: which Keras model it converts.
      version: bump when the converter changes, so cached exports are redone.

    Raises:
      RegistryError: ``name`` is taken or ``source`` is unknown.
    """
    if source not in SOURCES:
        raise RegistryError(f"variant '{name}': source must be one of {SOURCES}, got {source!r}")

    def decorate(fn):
        if name in _VARIANTS:
            raise RegistryError(f"export variant '{name}' is already registered")
        _VARIANTS[name] = Variant(name, source, fn, version)
        return fn
    return decorate


def get_variant(name: str) -> Variant:
    """The variant registered as ``name``.

    Raises:
      RegistryError: unknown name; the message lists the valid ones.
    """
    if name not in _VARIANTS:
        raise RegistryError(f"unknown export variant '{name}'; choose from: "
                            + ", ".join(variant_names()))
    return _VARIANTS[name]


def variant_names() -> list[str]:
    return sorted(_VARIANTS)


def convert_fp32(model, context: ExportContext) -> bytes:
    """Plain float32 conversion, no optimizations."""
    del context
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


register_variant("baseline_fp32", source="baseline")(convert_fp32)
register_variant("pruned_fp32", source="pruned")(convert_fp32)
