"""Mobile-ready classifiers: a 1xHxWx3 RGB input, TFLite metadata and a labels file.

The TFLite Task Library's ``ImageClassifier`` and Android Studio's ML Model
Binding need a 1xHxWx3 RGB input (float32 or uint8), normalisation options
for float inputs, and the labels as a TENSOR_AXIS_LABELS associated file.

* :func:`with_rgb_front` wraps a model to take a batch-1 RGB image. A model
  trained on grayscale gets a fixed 1x1 convolution (``rgb_to_gray``) with
  the BT.601 weights of ``tf.image.rgb_to_grayscale`` rescaled to sum to 1,
  so a gray image repeated on R, G and B gives back the same gray (up to
  float rounding, ~1e-7) and camera frames go straight in.
* :func:`add_metadata` writes the metadata with tflite-support's writers
  (imported by their full path: the top-level ``tflite_support`` package
  fails beside protobuf 7). Normalisation, per the Task Library's
  convention ``(pixel - mean) / std`` on [0, 255] pixels: float inputs
  (which expect [0, 1]) mean 0, std 255; uint8 inputs, whose quantization
  (scale 1/255, zero point 0) already maps pixels, mean 0, std 1; int8
  inputs (q = pixel - 128) mean 128, std 1; the Task Library accepts only
  uint8 and float32 inputs, so an int8 model is for direct interpreter use.
* :func:`read_metadata` reads it back with ``MetadataDisplayer``.

Example:
  >>> front = with_rgb_front(model)            # (1, 28, 28, 3) float input
  >>> raw = tf.lite.TFLiteConverter.from_keras_model(front).convert()
  >>> write_labels("out/labels.txt", ["cat", "dog"])
  >>> shipped = add_metadata(raw, "out/labels.txt", ModelInfo(name="pets"))
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tf_keras
from ai_edge_litert.interpreter import Interpreter
from tensorflow_lite_support.metadata import metadata_schema_py_generated as metadata_fb
from tensorflow_lite_support.metadata.python import metadata as tflite_metadata
from tensorflow_lite_support.metadata.python.metadata_writers import image_classifier
from tensorflow_lite_support.metadata.python.metadata_writers import metadata_info
from tensorflow_lite_support.metadata.python.metadata_writers import writer_utils

from pipeline import atomic
from pipeline.errors import PruningError

# tf.image.rgb_to_grayscale's weights (ITU-R BT.601), rescaled to sum to exactly 1.
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140]) / (0.2989 + 0.5870 + 0.1140)
LABELS_FILE = "labels.txt"
# (mean, std) of the Task Library's (pixel - mean) / std, by input dtype name.
NORMALIZATION = {"float32": (0.0, 255.0), "uint8": (0.0, 1.0), "int8": (128.0, 1.0)}


class MobileError(PruningError):
    """A model cannot be given an RGB input, or its metadata cannot be written."""


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The general metadata of a shipped model."""

    name: str
    description: str = ""
    version: str = "1"
    author: str = ""
    license: str = ""


def with_rgb_front(model):
    """``model`` behind a batch-1 RGB float input; a 1-channel model gets ``rgb_to_gray``.

    Raises:
      MobileError: the model's input has neither 1 nor 3 channels.
    """
    height, width, channels = model.input_shape[1:]
    if channels not in (1, 3):
        raise MobileError(f"{model.name} takes {channels}-channel images; mobile apps feed RGB, "
                          "so only 1-channel (grayscale) and 3-channel models can be exported")
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


def write_labels(path: str, class_names) -> str:
    """Writes one class name per line (atomically); returns the path."""
    names = [str(n) for n in class_names]
    if any("\n" in n for n in names) or not names:
        raise MobileError(f"class names must be non-empty and one line each, got {names}")
    return atomic.write_text(path, "\n".join(names) + "\n")


def add_metadata(tflite: bytes, labels_path: str, info: ModelInfo) -> bytes:
    """The model with image-classifier metadata and ``labels_path`` packed in.

    Raises:
      MobileError: the input is not 1xHxWx3, its dtype has no normalisation
        rule, or the writer fails.
    """
    (detail,) = Interpreter(model_content=tflite).get_input_details()
    shape, dtype = [int(d) for d in detail["shape"]], np.dtype(detail["dtype"]).name
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise MobileError(f"{info.name}: input shape {shape} is not 1xHxWx3; export the model "
                          "through with_rgb_front")
    if dtype not in NORMALIZATION:
        raise MobileError(f"{info.name}: input dtype {dtype} has no normalisation rule; "
                          f"expected one of {sorted(NORMALIZATION)}")
    mean, std = NORMALIZATION[dtype]
    try:
        general = metadata_info.GeneralMd(name=info.name, version=info.version,
                                          description=info.description, author=info.author,
                                          licenses=info.license)
        inputs = metadata_info.InputImageTensorMd(
            name="image", description=f"RGB image, {shape[1]}x{shape[2]}, {dtype}",
            norm_mean=[mean], norm_std=[std], color_space_type=metadata_fb.ColorSpaceType.RGB,
            tensor_type=writer_utils.get_input_tensor_types(tflite)[0])
        outputs = metadata_info.ClassificationTensorMd(
            name="probability", description="Probabilities of the labels.",
            label_files=[metadata_info.LabelFileMd(labels_path)],
            tensor_type=writer_utils.get_output_tensor_types(tflite)[0])
        writer = image_classifier.MetadataWriter.create_from_metadata_info(
            bytearray(tflite), general_md=general, input_md=inputs, output_md=outputs)
        return bytes(writer.populate())
    except (ValueError, RuntimeError, OSError) as e:
        raise MobileError(f"{info.name}: writing TFLite metadata failed: {e}") from e


def read_metadata(path: str) -> dict:
    """The metadata of the ``.tflite`` at ``path``, read back with ``MetadataDisplayer``.

    Returns:
      ``{"metadata": <the metadata JSON as a dict>, "files": {name: text}}``
      for every packed associated file.

    Raises:
      MobileError: the file has no metadata.
    """
    try:
        displayer = tflite_metadata.MetadataDisplayer.with_model_file(os.fspath(path))
    except ValueError as e:
        raise MobileError(f"{path} carries no TFLite metadata: {e}") from e
    files = {name: displayer.get_associated_file_buffer(name).decode()
             for name in displayer.get_packed_associated_file_list()}
    return {"metadata": json.loads(displayer.get_metadata_json()), "files": files}
