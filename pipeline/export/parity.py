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

A failed agreement check says why it may have failed: :func:`rounding_agreement`
measures the Keras model's agreement with itself once its weights are moved at
random by up to half an int8 step, in float. Below the bar, the model's answers
on these images move under weight rounding alone (a barely trained model, whose
class scores are near-uniform: a pruned MobileNetV2 0.35 after one fine-tuning
epoch agreed with itself on 87%, its int8 file on 77%), and training it further
is the cure; at or above it, the file's quantization itself lost them.

Example:
  >>> verify_parity("tflite/pruned_int8.tflite", keras_model, val_images, "pruned_int8")
  {'max_abs_diff': 0.0039, 'agreement': 1.0, 'examples': 256, ...}
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from pipeline import keras_api
from pipeline.errors import PruningError
from pipeline.export import rgb_front
from pipeline.litert import tensors
from pipeline.pruning import families
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
    named, dtype = named_outputs(path, images, preprocess)
    got = list(named.values())
    return (got if every else got[0]), dtype


def named_outputs(path: str, images: np.ndarray, preprocess=None) -> tuple[dict, str]:
    """``({output name: float output}, input dtype)``, in the file's output order.

    The names are the file's signature names (each head's Keras output layer,
    :func:`pipeline.export.rgb_front.with_rgb_front`), else the tensor names.
    """
    interpreter = Interpreter(model_path=path)
    (inp,), outs = interpreter.get_input_details(), interpreter.get_output_details()
    images = np.asarray(images, np.float32)
    if inp["shape"][-1] == 3:
        images = rgb_front.to_rgb(images)
    values = tensors.invoke(interpreter, inp, tensors.file_input(images, inp, preprocess), outs)
    names = tensors.output_names(interpreter)
    got = {names.get(int(out["index"]), out["name"]): tensors.dequantize(value, out)
           for out, value in zip(outs, values)}
    return got, np.dtype(inp["dtype"]).name


def _pair(expected: list, names: list, got: dict, path: str, name: str) -> list:
    """``got``'s outputs in the order of ``expected``'s: by name, else by shape (then order).

    The converter orders a multi-head file's outputs by its own rule (the
    signature's sorted names), not the Keras model's; a file whose signature
    lacks the Keras output names (one from an older export) is paired by shape.
    """
    if len(got) != len(expected):
        raise VerificationError(f"variant '{name}': {path} has {len(got)} outputs, its Keras "
                                f"model {len(expected)}")
    if len(expected) > 1 and set(names) == set(got):
        return [got[n] for n in names]
    values = list(got.values())
    left, paired = list(range(len(values))), []
    for e in expected:
        match = [j for j in left if values[j].shape == e.shape]
        if not match:
            raise VerificationError(f"variant '{name}': {path} has no output shaped "
                                    f"{e.shape} like its Keras model's")
        left.remove(match[0])
        paired.append(values[match[0]])
    return paired


def verify_parity(path: str, model, images: np.ndarray, name: str, rtol: float = 1e-4,
                  min_agreement: float = 0.99, preprocess=None,
                  by_agreement: bool = False, classifier: str = "") -> dict:
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
      classifier: a multi-head model's classifier output (its layer name), whose
        top-1 agreement is judged ('' = its single softmax output).

    Returns:
      ``{"examples", "input_dtype", "max_abs_diff", "max_rel_diff", "agreement",
      "criterion"}``, the criterion ``"rtol"`` or ``"agreement"``; a multi-head
      model's also ``"classifier_output"`` (the name LiteRT reads the classes
      from) and ``"outputs"`` (each output's difference relative to its own scale).

    Raises:
      VerificationError: the check failed; the message names the variant.
    """
    if len(images) == 0:
        raise VerificationError(f"variant '{name}': no images to verify {path} on")
    outputs = model(np.asarray(images, np.float32), training=False)
    expected = [np.asarray(o, np.float32) for o in tf.nest.flatten(outputs)]
    names = list(model.output_names)
    got, dtype = named_outputs(path, images, preprocess)
    got = _pair(expected, names, got, path, name)
    # Every output is held to the float bound, each relative to its own scale (a bbox
    # head's values are not a softmax's); agreement is the classifier head's.
    rel = [float(np.max(np.abs(g - e))) / (float(np.max(np.abs(e))) or 1.0)
           for g, e in zip(got, expected)]
    worst = int(np.argmax(rel))
    diff = float(np.max(np.abs(got[worst] - expected[worst])))
    scale = float(np.max(np.abs(expected[worst]))) or 1.0
    k = 0
    if len(expected) > 1:
        k = names.index(classifier) if classifier else heads.classifier_output(model, None)
    agreement, with_ties = top1_agreement(expected[k], got[k])
    by_rtol = dtype.startswith("float") and not by_agreement
    result = {"examples": int(len(images)), "input_dtype": dtype, "max_abs_diff": diff,
              "max_rel_diff": diff / scale, "agreement": agreement,
              "agreement_with_ties": with_ties,
              "criterion": "rtol" if by_rtol else "agreement"}
    if len(expected) > 1:
        result.update(classifier_output=names[k], outputs=dict(zip(names, rel)))
    if by_rtol:
        if diff > rtol * scale:
            raise VerificationError(
                f"variant '{name}': {path} differs from its Keras model by {diff:.3g} "
                f"(relative {diff / scale:.3g} > {rtol:g}) on {len(images)} validation images")
    elif with_ties < min_agreement:
        steady = rounding_agreement(model, images, k)
        raise VerificationError(
            f"variant '{name}': {path} agrees with its Keras model on the top-1 class of "
            f"{with_ties:.2%} of {len(images)} validation images, below {min_agreement:.0%} "
            f"(near-ties within {TIE:.0%} of the largest output count as agreeing; strictly "
            f"{agreement:.2%}); the Keras model itself, its weights moved at random by up to "
            f"half an int8 step, agrees with itself on {steady:.2%}"
            + (": its answers on these images move under weight rounding alone, before any "
               "activation is quantized (class scores too close together); train it further"
               if steady < min_agreement else
               ": the file's quantization, not the weights' rounding alone, moved them"))
    return result


def rounding_agreement(model, images: np.ndarray, output: int = 0, seed: int = 0) -> float:
    """Top-1 agreement (near-ties agreeing) of ``model`` with a copy of weights rounded at random.

    Every kernel of rank 2 or more is moved by uniform noise of up to half its
    per-output-channel int8 step (``max |w| / 127``, TFLite's symmetric weight
    quantization), the error int8 weights make, with the activations left in
    float. A model whose answers move under this alone is below the 99% bar in
    any int8 file, whatever its calibration: the diagnosis a failed check reports.

    Args:
      model: the Keras model (left unchanged).
      images: its input batch.
      output: the classifier output's index.
      seed: the noise's seed.

    Returns:
      The share of ``images`` whose top-1 class the noisy copy keeps.
    """
    rng = np.random.default_rng(seed)
    weights = []
    depthwise_kernels = {id(w) for layer in families.family_of(model).leaf_layers(model)
                         if type(layer).__name__ == "DepthwiseConv2D" for w in layer.weights}
    for variable, w in zip(model.weights, model.get_weights()):
        if w.ndim >= 2:
            # TFLite's channels: a depthwise kernel's are its last two axes (in x multiplier).
            # Keras 3 calls a DepthwiseConv2D's kernel "kernel", tf_keras "depthwise_kernel".
            depthwise = "depthwise_kernel" in variable.name or id(variable) in depthwise_kernels
            channels = int(np.prod(w.shape[-2:])) if depthwise else w.shape[-1]
            step = np.abs(w).reshape(-1, channels).max(0).reshape(
                w.shape[-2:] if depthwise else w.shape[-1:]) / 127.0
            w = w + rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype) * step
        weights.append(w)
    noisy = keras_api.copy_model(model, weights)
    batch = np.asarray(images, np.float32)
    clean = np.asarray(tf.nest.flatten(model(batch, training=False))[output], np.float32)
    moved = np.asarray(tf.nest.flatten(noisy(batch, training=False))[output], np.float32)
    return top1_agreement(clean, moved)[1]


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
