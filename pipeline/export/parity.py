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
* integer inputs, or ``by_agreement`` (a float-input file with integer
  weights, e.g. dynamic-range quantization, whose outputs move by the int8
  weight step rather than by rounding): top-1 agreement of at least
  ``min_agreement`` (default 99%), where the file's answer also agrees when
  the Keras model itself scores it within :data:`TIE` of its own top class
  (a near-tie, which any rounding may flip: a model of low confidence would
  otherwise fail on answers it barely prefers); the output is dequantized
  only to report the largest difference. ``agreement`` in the result is the
  strict one, ``agreement_with_ties`` the judged one.

Example:
  >>> verify_parity("tflite/pruned_int8.tflite", keras_model, val_images, "pruned_int8")
  {'max_abs_diff': 0.0039, 'agreement': 1.0, 'examples': 256, ...}
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from pipeline.errors import PruningError
from pipeline.export import rgb_front
from pipeline.litert import tensors
from pipeline.training import heads

# A near-tie, relative to the batch's largest output: a file's top-1 answer that the Keras
# model scores within this of its own top class still agrees (softmax outputs: 0.02).
TIE = 0.02


class VerificationError(PruningError):
    """A ``.tflite`` does not match its Keras model within the tolerance."""


def tflite_outputs(path: str, images: np.ndarray, preprocess=None, *,
                   every: bool = False) -> tuple:
    """Runs the ``.tflite`` at ``path`` on ``images``; returns float outputs and input dtype.

    Args:
      path: a ``.tflite`` file.
      images: the Keras model's input (float; [0, 1] without ``preprocess``).
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess` (None: ``unit``).
      every: return the list of every output (a multi-head file), not the only one.
    """
    interpreter = Interpreter(model_path=path)
    (inp,), outs = interpreter.get_input_details(), interpreter.get_output_details()
    images = np.asarray(images, np.float32)
    if inp["shape"][-1] == 3:
        images = rgb_front.to_rgb(images)
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], tensors.file_input(images, inp, preprocess))
    interpreter.invoke()
    got = [tensors.dequantize(interpreter.get_tensor(out["index"]), out) for out in outs]
    return (got if every else got[0]), np.dtype(inp["dtype"]).name


def _pair(expected: list, got: list, path: str, name: str) -> list:
    """``got`` reordered to ``expected``'s outputs, matched by shape (then by order).

    The converter orders a multi-head file's outputs by its own rule (the
    signature's sorted names), not the Keras model's.
    """
    if len(got) != len(expected):
        raise VerificationError(f"variant '{name}': {path} has {len(got)} outputs, its Keras "
                                f"model {len(expected)}")
    left, paired = list(range(len(got))), []
    for e in expected:
        match = [j for j in left if got[j].shape == e.shape]
        if not match:
            raise VerificationError(f"variant '{name}': {path} has no output shaped "
                                    f"{e.shape} like its Keras model's")
        left.remove(match[0])
        paired.append(got[match[0]])
    return paired


def verify_parity(path: str, model, images: np.ndarray, name: str, rtol: float = 1e-4,
                  min_agreement: float = 0.99, preprocess=None,
                  by_agreement: bool = False) -> dict:
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
      by_agreement: judge a float-input file by top-1 agreement instead of ``rtol``.

    Returns:
      ``{"examples", "input_dtype", "max_abs_diff", "max_rel_diff", "agreement",
      "criterion"}``, the criterion ``"rtol"`` or ``"agreement"``.

    Raises:
      VerificationError: the check failed; the message names the variant.
    """
    if len(images) == 0:
        raise VerificationError(f"variant '{name}': no images to verify {path} on")
    outputs = model(np.asarray(images, np.float32), training=False)
    expected = [np.asarray(o, np.float32) for o in tf.nest.flatten(outputs)]
    got, dtype = tflite_outputs(path, images, preprocess, every=True)
    got = _pair(expected, got, path, name)
    # Every output is held to the float bound, each relative to its own scale (a bbox
    # head's values are not a softmax's); agreement is the classifier head's.
    rel = [float(np.max(np.abs(g - e))) / (float(np.max(np.abs(e))) or 1.0)
           for g, e in zip(got, expected)]
    worst = int(np.argmax(rel))
    diff = float(np.max(np.abs(got[worst] - expected[worst])))
    scale = float(np.max(np.abs(expected[worst]))) or 1.0
    k = heads.classifier_output(model, None) if len(expected) > 1 else 0
    agreement, with_ties = top1_agreement(expected[k], got[k])
    by_rtol = dtype.startswith("float") and not by_agreement
    result = {"examples": int(len(images)), "input_dtype": dtype, "max_abs_diff": diff,
              "max_rel_diff": diff / scale, "agreement": agreement,
              "agreement_with_ties": with_ties,
              "criterion": "rtol" if by_rtol else "agreement"}
    if by_rtol:
        if diff > rtol * scale:
            raise VerificationError(
                f"variant '{name}': {path} differs from its Keras model by {diff:.3g} "
                f"(relative {diff / scale:.3g} > {rtol:g}) on {len(images)} validation images")
    elif with_ties < min_agreement:
        raise VerificationError(
            f"variant '{name}': {path} agrees with its Keras model on the top-1 class of "
            f"{with_ties:.2%} of {len(images)} validation images, below {min_agreement:.0%} "
            f"(near-ties within {TIE:.0%} of the largest output count as agreeing; strictly "
            f"{agreement:.2%})")
    return result


def top1_agreement(expected: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """``(strict, with_ties)``: the share of rows where ``got``'s top class is ``expected``'s.

    ``with_ties`` also counts a row where ``expected`` scores ``got``'s choice within
    :data:`TIE` times the batch's largest ``|expected|`` of its own top class.
    """
    keras, file = np.argmax(expected, -1), np.argmax(got, -1)
    rows = np.arange(len(expected))
    margin = expected[rows, keras] - expected[rows, file]
    scale = float(np.max(np.abs(expected))) or 1.0
    return (float(np.mean(keras == file)),
            float(np.mean((keras == file) | (margin <= TIE * scale))))
