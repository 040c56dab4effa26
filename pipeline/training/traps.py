"""Layers that TensorFlow 2.21's oneDNN kernels cannot train on this CPU, found before they crash.

TF 2.21's oneDNN kernels die with SIGSEGV (or abort) in the backward pass of
a 1x1 Conv2D with stride 2 whose input has fewer than 16 channels, at 56x56
and larger (measured here: 4, 8 and 12 input channels crash at 56, 64 and
112 px; 16, 24 and 32 channels, or 32 px, do not; 3x3 kernels and other
strides do not). Pruning makes such narrow strided layers common, and a
model from outside may hold them already. TensorFlow's own (Eigen) kernels
train them, but only when oneDNN is off for the whole process
(``TF_ENABLE_ONEDNN_OPTS=0`` before TensorFlow is imported), and that halves
training speed on this CPU (BENCHMARKS.md, "oneDNN off"): so oneDNN stays on
and only a model that holds such a layer is trained without it.

:func:`check` raises :class:`OneDnnTrapError` before such a model trains;
the command line restarts itself with oneDNN off (finished stages are kept),
a library caller gets the one-line fix.

Example:
  >>> find(model)
  [Trap(layer='block2_proj', input_shape=(56, 56, 8), reason='1x1 stride-2 Conv2D on 8 channels')]
"""
from __future__ import annotations

import dataclasses
import os

from pipeline import keras_api
from pipeline.errors import PruningError

ENV = "TF_ENABLE_ONEDNN_OPTS"
MIN_SAFE_CHANNELS = 16  # 16, 24, 32 input channels trained fine; 4, 8, 12 crashed
MAX_SAFE_SIDE = 32  # 28 and 32 px trained fine; 56 and larger crashed


class OneDnnTrapError(PruningError):
    """The model holds a layer that oneDNN cannot train; oneDNN is on in this process."""

    def __init__(self, message: str, traps: tuple):
        super().__init__(message)
        self.traps = traps


@dataclasses.dataclass(frozen=True)
class Trap:
    """One layer that oneDNN would crash on in training."""

    layer: str
    input_shape: tuple
    reason: str


def onednn_enabled() -> bool:
    """Whether TensorFlow in this process runs oneDNN kernels (its default on x86 Linux)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "off")


def find(model) -> list[Trap]:
    """The layers of ``model`` (nested sub-models included) that match the crashing pattern."""
    traps = []
    for layer, prefix in _layers(model, ""):
        trap = _trap(layer, prefix)
        if trap is not None:
            traps.append(trap)
    return traps


def check(model, where: str = "the model") -> None:
    """Raises :class:`OneDnnTrapError` if oneDNN is on and ``model`` holds a crashing layer.

    Args:
      model: the model about to be trained.
      where: what it is, for the message (``"the pruned model"``).
    """
    if not onednn_enabled():
        return
    traps = find(model)
    if traps:
        names = ", ".join(f"{t.layer} ({t.reason}, input {t.input_shape})" for t in traps[:3])
        more = f" and {len(traps) - 3} more" if len(traps) > 3 else ""
        raise OneDnnTrapError(
            f"{where} holds layers that TensorFlow 2.21's oneDNN kernels crash on in training: "
            f"{names}{more}; set {ENV}=0 in the environment before TensorFlow is imported "
            "(TensorFlow's own kernels then train them, more slowly)", tuple(traps))


def _layers(model, prefix: str):
    for layer in model.layers:
        if isinstance(layer, keras_api.of(layer).Model):
            yield from _layers(layer, f"{prefix}{layer.name}/")
        else:
            yield layer, prefix


def _input_shape(layer) -> tuple:
    """``layer``'s input shape without the batch axis (``()`` when it is not one tensor)."""
    if not keras_api.is_keras3(layer):
        return tuple(layer.input_shape[1:])
    inputs = layer.input  # Keras 3 layers have no input_shape
    return tuple(inputs.shape[1:]) if hasattr(inputs, "shape") else ()


def _trap(layer, prefix: str) -> Trap | None:
    if type(layer) is not keras_api.of(layer).layers.Conv2D:  # transposed, depthwise: not seen
        return None
    if tuple(layer.kernel_size) != (1, 1) or max(layer.strides) < 2:
        return None
    if layer.data_format != "channels_last":
        return None
    shape = _input_shape(layer)
    if len(shape) != 3 or shape[-1] is None or shape[-1] >= MIN_SAFE_CHANNELS:
        return None
    if all(side is not None and side <= MAX_SAFE_SIDE for side in shape[:2]):
        return None
    return Trap(f"{prefix}{layer.name}", shape,
                f"1x1 stride-{max(layer.strides)} Conv2D on {shape[-1]} channels")
