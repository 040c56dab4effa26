"""Parity of a written ``.tflite`` with the Keras model it was converted from.

Both run on the same batch of validation images: the Keras model on its own
input (grayscale for a gray model), the ``.tflite`` on the RGB equivalent
(the gray image repeated on R, G and B, which its ``rgb_to_gray`` front maps
back to the same gray), quantized with the file's own input scale and zero
point for an integer model. Given the model's preprocessing, each file gets
what it takes (:func:`pipeline.litert.tensors.file_input`): the Keras
model's input in R, G, B order (float), raw pixels (integer). Criteria:

* float inputs: ``max |tflite - keras| <= rtol * max |keras|`` (default
  ``rtol=1e-4``, relative to the largest output over the batch; the RGB front
  adds ~1e-7 of rounding, the converter's op fusions a few 1e-7 more);
* integer inputs: top-1 agreement of at least ``min_agreement`` (default
  99%); the output is dequantized only to report the largest difference.

Example:
  >>> verify_parity("tflite/pruned_int8.tflite", keras_model, val_images, "pruned_int8")
  {'max_abs_diff': 0.0039, 'agreement': 1.0, 'examples': 256, ...}
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from pipeline.errors import PruningError
from pipeline.export import rgb_front
from pipeline.litert import tensors


class VerificationError(PruningError):
    """A ``.tflite`` does not match its Keras model within the tolerance."""


def tflite_outputs(path: str, images: np.ndarray, preprocess=None) -> tuple[np.ndarray, str]:
    """Runs the ``.tflite`` at ``path`` on ``images``; returns float outputs and input dtype.

    Args:
      path: a ``.tflite`` file.
      images: the Keras model's input (float; [0, 1] without ``preprocess``).
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess` (None: ``unit``).
    """
    interpreter = Interpreter(model_path=path)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    images = np.asarray(images, np.float32)
    if inp["shape"][-1] == 3:
        images = rgb_front.to_rgb(images)
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], tensors.file_input(images, inp, preprocess))
    interpreter.invoke()
    return tensors.dequantize(interpreter.get_tensor(out["index"]), out), np.dtype(inp["dtype"]).name


def verify_parity(path: str, model, images: np.ndarray, name: str, rtol: float = 1e-4,
                  min_agreement: float = 0.99, preprocess=None) -> dict:
    """Checks the ``.tflite`` against ``model`` on ``images``; see the module doc for the criteria.

    Args:
      path: the written ``.tflite``.
      model: the Keras model it was converted from (without the RGB front).
      images: float images shaped like ``model``'s input, as the data
        pipelines yield them ([0, 1] without ``preprocess``).
      name: the variant's name, for the error message.
      rtol: float tolerance, relative to the largest Keras output.
      min_agreement: integer models' minimum top-1 agreement.
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess` (None: ``unit``).

    Returns:
      ``{"examples", "input_dtype", "max_abs_diff", "max_rel_diff", "agreement"}``.

    Raises:
      VerificationError: the check failed; the message names the variant.
    """
    if len(images) == 0:
        raise VerificationError(f"variant '{name}': no images to verify {path} on")
    expected = np.asarray(model(np.asarray(images, np.float32), training=False), np.float32)
    got, dtype = tflite_outputs(path, images, preprocess)
    diff = float(np.max(np.abs(got - expected)))
    scale = float(np.max(np.abs(expected))) or 1.0
    agreement = float(np.mean(np.argmax(got, -1) == np.argmax(expected, -1)))
    result = {"examples": int(len(images)), "input_dtype": dtype, "max_abs_diff": diff,
              "max_rel_diff": diff / scale, "agreement": agreement}
    if dtype.startswith("float"):
        if diff > rtol * scale:
            raise VerificationError(
                f"variant '{name}': {path} differs from its Keras model by {diff:.3g} "
                f"(relative {diff / scale:.3g} > {rtol:g}) on {len(images)} validation images")
    elif agreement < min_agreement:
        raise VerificationError(
            f"variant '{name}': {path} agrees with its Keras model on the top-1 class of "
            f"{agreement:.2%} of {len(images)} validation images, below {min_agreement:.0%}")
    return result
