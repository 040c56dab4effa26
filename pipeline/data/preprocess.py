"""What a model's input means: ``model_input = (pixel - mean) / std`` on raw 0-255 pixels.

A :class:`Preprocess` is the one description of a model's input that every
part of the pipeline reads: the data pipelines (training, validation, test
and calibration images), LiteRT evaluation, int8 calibration, the parity
checks and the TFLite metadata's ``NormalizationOptions``. ``mean`` and
``std`` are in 0-255 pixel units and in the model's channel order (one value
applies to every channel); ``bgr`` says the model takes its channels as
B, G, R (Caffe-style weights), while images and camera frames are R, G, B.

The named preprocessings (:func:`preprocess_names`, looked up by
:func:`from_settings`):

==================  ==========================================  =====================
name                model input                                 mean / std (pixels)
==================  ==========================================  =====================
``unit``            pixel / 255, in [0, 1] (the default)        0 / 255
``symmetric``       pixel / 127.5 - 1, in [-1, 1]               127.5 / 127.5
``imagenet_caffe``  B, G, R order, ImageNet mean subtracted,    103.939, 116.779,
                    not scaled (Keras ``mode="caffe"``: VGG16,  123.68 (B, G, R) / 1
                    ResNet50)
``imagenet_torch``  (pixel / 255 - mean) / std per channel      123.675, 116.28,
                    (Keras ``mode="torch"``, torchvision)       103.53 / 58.395,
                                                                57.12, 57.375
``mean_std``        (pixel - mean) / std with ``mean`` and      as given, R, G, B
                    ``std`` given (1 or 3 values)               order
==================  ==========================================  =====================

The data pipelines work on [0, 1] images (``pixel / 255``: resizing, colour
conversion and augmentation happen there, so a shift pads with black
whatever the preprocessing) and end with :meth:`Preprocess.from_unit`; for
``unit`` that is ``(x - 0) / 1``, bit for bit the [0, 1] image.

Example:
  >>> p = from_settings("symmetric")
  >>> p.from_unit(np.array([0.0, 1.0], np.float32))
  array([-1.,  1.], dtype=float32)
  >>> p.normalization()  # the metadata's (mean, std), R, G, B
  ([127.5, 127.5, 127.5], [127.5, 127.5, 127.5])
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from pipeline.errors import PruningError
from pipeline.registry import Registry

MEAN_STD = "mean_std"


class PreprocessError(PruningError):
    """A preprocessing is unknown, malformed, or does not fit the model's input."""


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """``model_input = (pixel - mean) / std`` per channel, on 0-255 pixels.

    Attributes:
      name: the name it was made from (for messages and the report).
      mean: 1 or 3 values, 0-255 pixel units, in the model's channel order.
      std: as many values as ``mean``, each > 0.
      bgr: the model takes B, G, R; images (and the exported file's input) are R, G, B.

    Raises:
      PreprocessError: mean and std differ in length, have neither 1 nor 3
        values, a std is not positive, a value is not finite, or ``bgr``
        with fewer than 3 values.
    """

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bgr: bool = False

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if len(self.mean) not in (1, 3) or len(self.std) != len(self.mean):
            raise PreprocessError(
                f"preprocess={self.name!r}: mean={self.mean} and std={self.std} must both hold "
                "1 value (every channel) or 3 (per channel); pass mean=(m,) std=(s,) or "
                "mean=(r, g, b) std=(r, g, b)", argument="mean")
        if not all(math.isfinite(v) for v in self.mean + self.std):
            raise PreprocessError(f"preprocess={self.name!r}: mean={self.mean} and "
                                  f"std={self.std} must be finite numbers", argument="mean")
        if min(self.std) <= 0:
            raise PreprocessError(f"preprocess={self.name!r}: std={self.std} must be > 0 "
                                  "(0-255 pixel units, e.g. std=(255,) for [0, 1])",
                                  argument="std")
        if self.bgr and self.channels != 3:
            raise PreprocessError(f"preprocess={self.name!r} reorders R, G, B and needs 3 "
                                  f"values of mean, got {self.mean}", argument="mean")

    @property
    def channels(self) -> int:
        """1 if one mean/std serves every channel, else 3."""
        return len(self.mean)

    @property
    def is_unit(self) -> bool:
        """True for pixel / 255 in R, G, B order: the [0, 1] images themselves."""
        return (not self.bgr and all(m == 0.0 for m in self.mean)
                and all(s == 255.0 for s in self.std))

    def from_unit(self, images):
        """[0, 1] R, G, B (or gray) images -> the model's input; numpy arrays or tf tensors."""
        images = images[..., ::-1] if self.bgr else images
        return (images - self._unit("mean")) / self._unit("std")

    def to_unit(self, images):
        """The model's input -> [0, 1] R, G, B (or gray) images; inverse of :meth:`from_unit`."""
        images = images * self._unit("std") + self._unit("mean")
        return images[..., ::-1] if self.bgr else images

    def to_rgb_order(self, images):
        """The model's input in R, G, B channel order (what the exported file takes)."""
        return images[..., ::-1] if self.bgr else images

    def from_pixels(self, pixels) -> np.ndarray:
        """What a client computes from raw R, G, B (or gray) 0-255 pixels: the model's input."""
        return np.asarray(self.from_unit(np.asarray(pixels, np.float32) / 255.0), np.float32)

    def normalization(self, channels: int = 3) -> tuple[list[float], list[float]]:
        """``(mean, std)`` in R, G, B order, ``channels`` values each, for the TFLite metadata.

        A client feeding ``(pixel - mean) / std`` of raw R, G, B pixels to a
        float file gets :meth:`from_pixels` (in R, G, B order).

        Raises:
          PreprocessError: per-channel values asked for fewer channels.
        """
        self.check_channels(channels)
        mean, std = (self.mean[::-1], self.std[::-1]) if self.bgr else (self.mean, self.std)
        if len(mean) == 1:
            mean, std = mean * channels, std * channels
        return list(mean), list(std)

    def check_channels(self, channels: int) -> None:
        """Raises unless this preprocessing fits a ``channels``-channel model input.

        Raises:
          PreprocessError: 3 per-channel values for a 1-channel input.
        """
        if self.channels not in (1, channels):
            raise PreprocessError(
                f"preprocess={self.name!r} has {self.channels} per-channel means {self.mean} "
                f"but the model input has {channels} channel(s); pass channels=3, or a "
                "preprocessing with one value for every channel (unit, symmetric, or mean_std "
                "with one mean and std)", argument="preprocess")

    def to_dict(self) -> dict:
        """JSON-ready fields (what the data stage's hash and the report record)."""
        return dataclasses.asdict(self)

    def _unit(self, which: str) -> np.ndarray:
        return np.asarray(getattr(self, which), np.float32) / np.float32(255.0)


Factory = Callable[[tuple, tuple], Preprocess]
_PREPROCESSINGS: Registry[Factory] = Registry("preprocessing")


def register_preprocess(name: str):
    """Decorator registering ``factory(mean, std) -> Preprocess`` as ``name``.

    Raises:
      RegistryError: ``name`` is already registered.
    """
    return _PREPROCESSINGS.register(name)


def preprocess_names() -> list[str]:
    """The registered preprocessing names, sorted."""
    return _PREPROCESSINGS.names()


def from_settings(name: str = "unit", mean=(), std=()) -> Preprocess:
    """The :class:`Preprocess` named ``name``; ``mean``/``std`` only for ``mean_std``.

    Args:
      name: one of :func:`preprocess_names`.
      mean: for ``mean_std``: 1 or 3 means, 0-255 pixel units, R, G, B order.
      std: for ``mean_std``: as many standard deviations, 0-255 pixel units.

    Returns:
      The :class:`Preprocess`.

    Raises:
      RegistryError: unknown ``name``.
      PreprocessError: ``mean``/``std`` given with a named preprocessing, or
        missing or malformed with ``mean_std``.
    """
    return _PREPROCESSINGS.get(name)(tuple(mean), tuple(std))


def _preset(preprocess: Preprocess) -> Factory:
    def factory(mean: tuple, std: tuple) -> Preprocess:
        if mean or std:
            argument = "mean" if mean else "std"
            raise PreprocessError(
                f"preprocess={preprocess.name!r} fixes its own mean and std; {argument}="
                f"{mean or std} is read only with preprocess='{MEAN_STD}': drop {argument}, "
                f"or pass preprocess='{MEAN_STD}'", argument=argument)
        return preprocess
    return factory


UNIT = Preprocess("unit", (0.0,), (255.0,))
SYMMETRIC = Preprocess("symmetric", (127.5,), (127.5,))
# Keras applications' imagenet_utils, mode="caffe": B, G, R means, no scaling.
IMAGENET_CAFFE = Preprocess("imagenet_caffe", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0),
                            bgr=True)
# mode="torch" (torchvision): (x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225].
IMAGENET_TORCH = Preprocess("imagenet_torch", tuple(255 * m for m in (0.485, 0.456, 0.406)),
                            tuple(255 * s for s in (0.229, 0.224, 0.225)))

for _preprocess in (UNIT, SYMMETRIC, IMAGENET_CAFFE, IMAGENET_TORCH):
    register_preprocess(_preprocess.name)(_preset(_preprocess))


@register_preprocess(MEAN_STD)
def _mean_std(mean: tuple, std: tuple) -> Preprocess:
    if not mean or not std:
        missing = "mean" if not mean else "std"
        raise PreprocessError(f"preprocess='{MEAN_STD}' needs {missing}=<1 or 3 values in 0-255 "
                              f"pixel units>, got {missing}=()", argument=missing)
    return Preprocess(MEAN_STD, mean, std)
