"""The input a model file declares, and the image size and channels the data are loaded at.

With ``model.path`` the model says what it takes: its input's height, width
and channels set the data's (images are resized, grayscale <-> RGB
converted), so a 64x64x1 model runs on a folder of 32x32 RGB images with
no override. ``model.input_size`` and ``model.channels`` still override
(0, their default, means "from the model"). A model whose height and width
are unknown (``(None, None, 3)``, fully convolutional) takes the data's own
size (a folder's images are read at 224x224). A model the pipeline cannot
feed one image batch to (several inputs, an input that is not
``(height, width, 1 or 3)``, or not square: the loaders resize to a square
side) is refused with one line. Built from ``model.name``, a model takes the
data as they are (0 = the data's own) and is built at their shape.

Example:
  >>> from pipeline.run import model_input
  >>> model_input.data_shape(config.model, model)  # a 64x64x1 model, no override
  (64, 1)
"""
from __future__ import annotations

import dataclasses

from pipeline.errors import UnsupportedModelError

_IMAGE = "one image input (height, width, 1 or 3)"


@dataclasses.dataclass(frozen=True)
class Declared:
    """A model's declared input: ``height`` and ``width`` None when it takes any size."""

    height: int | None
    width: int | None
    channels: int


def declared(model, where: str) -> Declared:
    """The single image input ``model`` takes.

    Args:
      model: a built tf_keras model.
      where: how errors name it (``model.path``).

    Raises:
      UnsupportedModelError: several inputs, not an image input, 2 or 4+
        channels, or height != width.
    """
    shapes = [tuple(t.shape)[1:] for t in model.inputs]
    if len(shapes) != 1:
        raise UnsupportedModelError(
            f"{where} takes {len(shapes)} inputs {shapes}; the pipeline feeds {_IMAGE}: "
            "prune a model with a single image input")
    shape = shapes[0]
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise UnsupportedModelError(
            f"{where} takes inputs of shape {shape}; the pipeline feeds {_IMAGE}: prune an "
            "image classifier, or wrap the model behind such an input")
    height, width, channels = shape
    if height != width:
        raise UnsupportedModelError(
            f"{where} takes {height}x{width} inputs; the data loaders resize images to a "
            "square side: prune a model with a square input (or None x None)")
    return Declared(height, width, int(channels))


def data_shape(model_section, model=None) -> tuple[int, int]:
    """``(input_size, channels)`` the data are loaded at (0 = the data's own).

    Args:
      model_section: ``config.model``; nonzero ``input_size``/``channels`` win.
      model: the loaded ``model.path`` (None: ``model.name`` is built at the data's shape).

    Raises:
      UnsupportedModelError: see :func:`declared`.
    """
    size, channels = int(model_section.input_size), int(model_section.channels)
    if model is None or not model.inputs:  # a subclassed model: the preflight refuses it
        return size, channels
    have = declared(model, model_section.path)
    return size or int(have.height or 0), channels or have.channels
