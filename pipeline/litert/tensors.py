"""A LiteRT interpreter's tensors in and out, each with its own quantization.

Float images go into an integer input with that tensor's scale and zero
point, and integer outputs come back as float32, so every caller (accuracy,
parity checks) feeds and reads any variant the same way.

:func:`file_input` maps the model's input (what the data pipelines yield) to
what an exported file takes, given the model's preprocessing (a
:class:`pipeline.data.preprocess.Preprocess`, passed in: this layer does not
import the data layer). Exported files follow one rule
(:mod:`pipeline.export.rgb_front`): a float input takes the model's input in
R, G, B order; an integer input takes raw pixels (real value pixel / 255),
the preprocessing running inside the graph.

A multi-head file's outputs are found by name (:func:`output_names`, the
signature's names, which the export gives each head from its Keras output
layer), never by position: the converter orders them by its own rule.

Example:
  >>> (inp,) = interpreter.get_input_details()
  >>> interpreter.set_tensor(inp["index"], file_input(images, inp, preprocess))
  >>> scores = interpreter.get_tensor(output_detail(interpreter, "conv6-1")["index"])
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import PruningError


def file_input(images: np.ndarray, detail: dict, preprocess=None) -> np.ndarray:
    """The model's input images -> the tensor an exported file takes (see the module doc).

    Args:
      images: a batch as the data pipelines yield it (the model's input).
      detail: the interpreter's input detail.
      preprocess: the model's ``Preprocess``; None: the images are already
        [0, 1] R, G, B (the ``unit`` preprocessing).

    Returns:
      The batch in the input's dtype.
    """
    images = np.asarray(images, np.float32)
    if preprocess is not None:
        floating = np.issubdtype(detail["dtype"], np.floating)
        images = preprocess.to_rgb_order(images) if floating else preprocess.to_unit(images)
    return quantize_images(np.asarray(images, np.float32), detail)


def quantize_images(images: np.ndarray, detail: dict) -> np.ndarray:
    """Float images -> the input tensor's dtype, with its own scale and zero point."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return images.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """An output tensor back to float32 with its scale and zero point (floats pass through)."""
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


def output_names(interpreter) -> dict[int, str]:
    """Output tensor index -> its signature name ({} when the file has no signature)."""
    signatures = interpreter.get_signature_list()
    if not signatures:
        return {}
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    return {int(d["index"]): name for name, d in runner.get_output_details().items()}


def output_detail(interpreter, name: str = "") -> dict:
    """The output detail named ``name`` (its signature name); '' for a single-output file.

    Raises:
      PruningError: ``name`` is '' and the file has several outputs, or no output is
        called ``name``; the message lists the file's output names.
    """
    details = interpreter.get_output_details()
    if not name and len(details) == 1:
        return details[0]
    names = output_names(interpreter)
    for detail in details:
        if names.get(int(detail["index"])) == name:
            return detail
    listed = ", ".join(names.get(int(d["index"]), d["name"]) for d in details)
    wanted = f"no output called {name!r}" if name else f"{len(details)} outputs"
    raise PruningError(f"the .tflite has {wanted} (its outputs: {listed}); pass "
                       "output=<one of those names>", argument="output")


def invoke(interpreter, detail: dict, batch: np.ndarray, outputs) -> list[np.ndarray]:
    """Runs ``batch`` (already in the input's dtype) and returns the raw ``outputs`` tensors.

    The input is resized to the batch when the file allows it. A file whose
    graph fixes batch 1 (a Keras 3 ``Flatten`` traced at batch 1 reshapes to
    a constant ``[1, n]``, so XNNPack cannot resize it) runs image by image,
    the outputs concatenated: the same answers, batch 1 being what apps feed.

    Args:
      interpreter: a LiteRT interpreter.
      detail: its input detail.
      batch: the input batch.
      outputs: output details to read.
    """
    current = next(tuple(d["shape"]) for d in interpreter.get_input_details()
                   if d["index"] == detail["index"])
    chunks = [batch]
    if current != batch.shape:  # resized only when the batch size changes
        try:
            interpreter.resize_tensor_input(detail["index"], batch.shape)
            interpreter.allocate_tensors()
        except RuntimeError:
            interpreter.resize_tensor_input(detail["index"], (1,) + batch.shape[1:])
            chunks = [batch[i:i + 1] for i in range(len(batch))]
    interpreter.allocate_tensors()  # returns at once when nothing changed since the last call
    results = [[] for _ in outputs]
    for chunk in chunks:
        interpreter.set_tensor(detail["index"], chunk)
        interpreter.invoke()
        for result, out in zip(results, outputs):
            result.append(interpreter.get_tensor(out["index"]))
    return [np.concatenate(r) for r in results]
