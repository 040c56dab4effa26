"""An RGB input for any 1- or 3-channel classifier, as mobile apps feed camera frames.

The TFLite Task Library's ``ImageClassifier`` and Android Studio's ML Model
Binding need a 1xHxWx3 RGB input. :func:`with_rgb_front` wraps a model to
take a batch-1 RGB image. A model trained on grayscale gets a fixed 1x1
convolution (``rgb_to_gray``) with the BT.601 weights of
``tf.image.rgb_to_grayscale`` rescaled to sum to 1, so a gray image repeated
on R, G and B gives back the same gray (up to float rounding, ~1e-7) and
camera frames go straight in. :func:`to_rgb` makes such repeated images
from a gray batch.

Example:
  >>> front = with_rgb_front(model)            # (1, 28, 28, 3) float input
  >>> raw = tf.lite.TFLiteConverter.from_keras_model(front).convert()
  >>> front(to_rgb(gray_images[:1]))
"""
from __future__ import annotations

import numpy as np
import tf_keras

from pipeline.errors import PruningError

# tf.image.rgb_to_grayscale's weights (ITU-R BT.601), rescaled to sum to exactly 1.
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140]) / (0.2989 + 0.5870 + 0.1140)


class RgbFrontError(PruningError):
    """A model cannot be given an RGB input."""


def with_rgb_front(model):
    """``model`` behind a batch-1 RGB float input; a 1-channel model gets ``rgb_to_gray``.

    Args:
      model: a tf_keras model taking (H, W, 1) or (H, W, 3) images.

    Returns:
      A new model named ``<name>_rgb`` taking (1, H, W, 3) float images.

    Raises:
      RgbFrontError: the model's input has neither 1 nor 3 channels.
    """
    height, width, channels = model.input_shape[1:]
    if channels not in (1, 3):
        raise RgbFrontError(f"{model.name} takes {channels}-channel images; mobile apps feed "
                            "RGB, so only 1-channel (grayscale) and 3-channel models can be "
                            "exported", argument="model")
    rgb = tf_keras.Input((height, width, 3), batch_size=1, name="image")
    x = rgb
    if channels == 1:
        to_gray = tf_keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="rgb_to_gray")
        x = to_gray(x)
        to_gray.set_weights([GRAY_WEIGHTS.reshape(1, 1, 3, 1).astype(np.float32)])
    return tf_keras.Model(rgb, model(x), name=f"{model.name}_rgb")


def to_rgb(images: np.ndarray) -> np.ndarray:
    """A batch of gray images repeated on 3 channels (RGB batches pass through)."""
    images = np.asarray(images)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
