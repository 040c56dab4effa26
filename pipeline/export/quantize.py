"""Full-integer post-training quantization: int8 weights and activations, uint8 or int8 I/O.

The converter calibrates activation ranges on a representative dataset of
training images (never test images). The input's quantization follows the
calibration range: with images in [0, 1] that reach both ends, a uint8
input gets scale 1/255 and zero point 0, so a camera frame's raw pixels go
in unchanged; :func:`convert_int8` checks that, because the mobile metadata
(:mod:`pipeline.export.metadata`) promises it.

A model with another preprocessing (:mod:`pipeline.data.preprocess`) is
not given a scale and zero point of its own: ``[-1, 1]`` would need zero
point 127.5, and ImageNet's per-channel mean and std no per-tensor pair at
all. Instead :func:`pipeline.export.rgb_front.with_normalization` puts the
preprocessing in the graph (one fixed 1x1 depthwise layer, quantized like
any other: its output is rounded to the first layer's int8 step), the
calibration images are mapped back to [0, 1], and the input check above
holds unchanged for every preprocessing.

Example:
  >>> data = lambda: ([image[None]] for image in calibration_images)
  >>> tflite_bytes = convert_int8(model, data, input_type="uint8")
"""
from __future__ import annotations

from typing import Callable, Iterable

import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from pipeline import keras_api
from pipeline.errors import PruningError
from pipeline.export import rgb_front

INPUT_TYPES = {"uint8": tf.uint8, "int8": tf.int8}
# Zero point of an input whose real range is [0, 1], per input type.
_ZERO_POINT = {"uint8": 0, "int8": -128}


class QuantizeError(PruningError):
    """Integer conversion failed, or its input quantization is not the promised one."""


def convert_int8(model, representative: Callable[[], Iterable], input_type: str = "uint8",
                 preprocess=None) -> bytes:
    """Converts ``model`` to a fully integer ``.tflite`` (builtin int8 ops only).

    Args:
      model: a tf_keras model taking float R, G, B (or gray) images of its
        preprocessing (a :func:`pipeline.export.rgb_front.with_rgb_front` model).
      representative: a generator function yielding ``[batch_of_1]`` lists of
        training images as the data pipelines yield them (the Keras model's
        input, gray ones repeated on 3 channels), as
        ``TFLiteConverter.representative_dataset`` expects.
      input_type: ``"uint8"`` (what the TFLite Task Library feeds) or ``"int8"``;
        the output gets the same type.
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess`
        (None: ``unit``, images in [0, 1]); the file takes raw pixels whatever it is.

    Returns:
      The ``.tflite`` bytes.

    Raises:
      QuantizeError: unknown ``input_type``, an op with no int8 kernel, or an
        input quantization other than real = pixel / 255.
    """
    if input_type not in INPUT_TYPES:
        raise QuantizeError(f"export.int8_input must be one of {sorted(INPUT_TYPES)}, "
                            f"got {input_type!r}")
    if preprocess is not None and not preprocess.is_unit:
        model = rgb_front.with_normalization(model, preprocess)
        representative = _in_unit(representative, preprocess)
    representative = _spanning(representative)
    converter = keras_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = INPUT_TYPES[input_type]
    converter.inference_output_type = INPUT_TYPES[input_type]
    try:
        result = converter.convert()
    except Exception as e:  # the converter raises ConverterError, RuntimeError or ValueError
        raise QuantizeError(f"full-integer conversion of {model.name} failed: {e}") from e
    check_input_quantization(result, input_type)
    return result


def _in_unit(representative: Callable[[], Iterable], preprocess) -> Callable[[], Iterable]:
    """``representative``'s images mapped back to the [0, 1] R, G, B images they came from."""
    def generate():
        for (image,) in representative():
            yield [preprocess.to_unit(tf.convert_to_tensor(image, tf.float32))]
    return generate


def _spanning(representative: Callable[[], Iterable]) -> Callable[[], Iterable]:
    """A black and a white image, then ``representative``'s [0, 1] images.

    The input's int8 scale is the calibration's range: without both ends a
    folder of low-contrast photos would give a scale other than 1/255, and raw
    camera pixels would then be mis-scaled.
    """
    def generate():
        for i, (image,) in enumerate(representative()):
            if i == 0:
                image = tf.convert_to_tensor(image, tf.float32)
                yield [tf.zeros_like(image)]
                yield [tf.ones_like(image)]
            yield [image]
    return generate


def check_input_quantization(tflite: bytes, input_type: str, rtol: float = 0.01) -> tuple:
    """Returns the input's ``(scale, zero_point)`` after checking it maps pixels to pixel/255.

    Raises:
      QuantizeError: the scale is off 1/255 by more than ``rtol`` or the zero
        point differs; the calibration images do not span [0, 1].
    """
    (detail,) = Interpreter(model_content=tflite).get_input_details()
    scale, zero_point = detail["quantization"]
    if abs(scale * 255.0 - 1.0) > rtol or zero_point != _ZERO_POINT[input_type]:
        raise QuantizeError(
            f"the {input_type} input got scale {scale:.6g} and zero point {zero_point}, not "
            f"1/255 and {_ZERO_POINT[input_type]}: the calibration images do not span [0, 1], "
            "so raw camera pixels would be mis-scaled; raise export.calibration_samples")
    return float(scale), int(zero_point)


def keras_converter(model) -> tf.lite.TFLiteConverter:
    """The TFLite converter of a Keras model whose file names every output after its head.

    ``from_keras_model`` names a tf_keras model's outputs after their layers,
    but a Keras 3 model's ``output_0``, ``output_1``...; a Keras 3 model of
    several outputs is therefore converted through a view returning them as a
    dict keyed by the output layers' names (same layers and weights), which the
    file's signature keeps, so readers find each head by name
    (:func:`pipeline.litert.tensors.output_detail`).
    """
    if keras_api.is_keras3(model) and len(model.outputs) > 1:
        model = keras_api.of(model).Model(model.inputs, dict(zip(model.output_names,
                                                                 model.outputs)))
    return tf.lite.TFLiteConverter.from_keras_model(model)
