"""An RGB input for any 1- or 3-channel classifier, as mobile apps feed camera frames.

The TFLite Task Library's ``ImageClassifier`` and Android Studio's ML Model
Binding need a 1xHxWx3 RGB input. :func:`with_rgb_front` wraps a model to
take a batch-1 RGB image. A model trained on grayscale gets a fixed 1x1
convolution (``rgb_to_gray``) with the BT.601 weights of
``tf.image.rgb_to_grayscale`` rescaled to sum to 1, so a gray image repeated
on R, G and B gives back the same gray (up to float rounding, ~1e-7) and
camera frames go straight in. A model whose preprocessing takes B, G, R
(``imagenet_caffe``) gets a fixed channel permutation (``rgb_to_bgr``, exact
in float). :func:`to_rgb` makes such repeated images from a gray batch.

What the input takes, by dtype (the rule :mod:`pipeline.litert.tensors`
feeds by and :mod:`pipeline.export.metadata` describes):

* a float input takes the model's input in R, G, B order, i.e.
  ``(pixel - mean) / std`` of the model's preprocessing
  (:mod:`pipeline.data.preprocess`); the metadata carries that mean and std;
* an integer input takes raw pixels: :func:`with_normalization` puts the
  preprocessing inside the graph, as a fixed 1x1 depthwise convolution
  (``normalize``) from [0, 1] images, so the input is quantized with scale
  1/255 and zero point 0 (uint8) for every preprocessing, including
  per-channel ones that no single scale and zero point can express.

Example:
  >>> front = with_rgb_front(model)            # (1, 28, 28, 3) float input
  >>> raw = tf.lite.TFLiteConverter.from_keras_model(front).convert()
  >>> front(to_rgb(gray_images[:1]))
"""
from __future__ import annotations

import numpy as np

from pipeline import keras_api
from pipeline.errors import PruningError

# tf.image.rgb_to_grayscale's weights (ITU-R BT.601), rescaled to sum to exactly 1.
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140]) / (0.2989 + 0.5870 + 0.1140)


class RgbFrontError(PruningError):
    """A model cannot be given an RGB input."""


def with_rgb_front(model, preprocess=None):
    """``model`` behind a batch-1 RGB float input; a 1-channel model gets ``rgb_to_gray``.

    Args:
      model: a tf_keras or Keras 3 model taking (H, W, 1) or (H, W, 3) images;
        the wrapper is built in the same Keras.
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess`;
        a B, G, R one adds ``rgb_to_bgr`` (None: R, G, B).

    Returns:
      A new model named ``<name>_rgb`` taking (1, H, W, 3) float images, the
      model's input in R, G, B order. A model of several outputs (heads) keeps
      each output's name (an identity layer named like ``model``'s output
      layer), so the ``.tflite`` signature names every head and readers find
      them by name (:func:`pipeline.litert.tensors.output_detail`).

    Raises:
      RgbFrontError: the model's input has neither 1 nor 3 channels, or a
        B, G, R preprocessing meets a 1-channel model.
    """
    height, width, channels = model.input_shape[1:]
    if channels not in (1, 3):
        raise RgbFrontError(f"{model.name} takes {channels}-channel images; mobile apps feed "
                            "RGB, so only 1-channel (grayscale) and 3-channel models can be "
                            "exported", argument="model")
    K = keras_api.of(model)
    rgb = K.Input((height, width, 3), batch_size=1, name="image")
    x = rgb
    if channels == 1:
        to_gray = K.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="rgb_to_gray")
        x = to_gray(x)
        to_gray.set_weights([GRAY_WEIGHTS.reshape(1, 1, 3, 1).astype(np.float32)])
    if preprocess is not None and preprocess.bgr:
        if channels != 3:
            raise RgbFrontError(f"{model.name} takes 1-channel images but its preprocessing "
                                f"{preprocess.name!r} reorders R, G, B", argument="preprocess")
        to_bgr = K.layers.Conv2D(3, 1, use_bias=False, trainable=False, name="rgb_to_bgr")
        x = to_bgr(x)
        to_bgr.set_weights([np.eye(3, dtype=np.float32)[::-1].reshape(1, 1, 3, 3)])
    return K.Model(rgb, _named_outputs(model, model(x)), name=f"{model.name}_rgb")


def _named_outputs(model, outputs):
    """``model``'s outputs on a new input, each of several named like ``model``'s own.

    Without the identity layers every head of the wrapping model would be named
    after ``model`` itself; the converter drops them (no op in the file).
    """
    if len(model.outputs) == 1:
        return outputs
    return [keras_api.of(model).layers.Activation("linear", name=name)(out)
            for name, out in zip(model.output_names, outputs)]


def with_normalization(front, preprocess):
    """``front`` (a :func:`with_rgb_front` model) behind a fixed ``normalize`` layer from [0, 1].

    The layer computes ``(255 x - mean) / std`` per R, G, B channel, so the
    returned model takes pixel / 255 and an integer conversion quantizes its
    input as raw pixels, whatever the preprocessing.

    Args:
      front: a model taking (1, H, W, 3) R, G, B images of the model's input.
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess`.

    Returns:
      ``front`` itself for ``unit`` (nothing to do), else a new model named
      ``<front.name>_normalized`` taking (1, H, W, 3) images in [0, 1].
    """
    if preprocess is None or preprocess.is_unit:
        return front
    mean, std = (np.asarray(v, np.float32) for v in preprocess.normalization(3))
    K = keras_api.of(front)
    unit = K.Input(front.input_shape[1:], batch_size=1, name="image")
    normalize = K.layers.DepthwiseConv2D(1, trainable=False, name="normalize")
    x = normalize(unit)
    normalize.set_weights([(255.0 / std).reshape(1, 1, 3, 1), -mean / std])
    return K.Model(unit, _named_outputs(front, front(x)), name=f"{front.name}_normalized")


def to_rgb(images: np.ndarray) -> np.ndarray:
    """A batch of gray images repeated on 3 channels (RGB batches pass through)."""
    images = np.asarray(images)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
