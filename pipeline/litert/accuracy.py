"""Accuracy of a ``.tflite`` classifier on a labelled dataset, run by LiteRT.

Quantized inputs (int8/uint8) are quantized with the model's own scale and
zero point, so variants added later are evaluated the same way. Gray images
fed to a model with an RGB input (the mobile export's ``rgb_to_gray`` front)
are repeated on R, G and B. The dataset yields the Keras model's input; with
the model's preprocessing given, each file gets what it takes
(:func:`pipeline.litert.tensors.file_input`): the model's input in R, G, B
order for a float file, raw pixels for an integer one.

Example:
  >>> tflite_accuracy("work/tflite/pruned_fp32.tflite", datasets.test)
  {'accuracy': 0.93, 'examples': 10000, 'seconds': 3.1}
"""
from __future__ import annotations

import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from pipeline.errors import PruningError
from pipeline.litert.tensors import file_input, invoke, output_detail


def tflite_accuracy(path: str, dataset, num_threads: int | None = None,
                    preprocess=None, output: str = "") -> dict:
    """Top-1 accuracy of the model at ``path`` on ``(images, labels)`` batches.

    Args:
      path: a ``.tflite`` file with one image input and a class-score output.
      dataset: an iterable of ``(images, labels)`` batches (tf or numpy).
      num_threads: LiteRT threads (None: its default).
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess`,
        which ``dataset``'s images went through (None: ``unit``, [0, 1]).
      output: the class-score output's name in a multi-head file (its Keras output
        layer's name, e.g. ``conv6-1``); '' for a file of one output.

    Returns:
      ``{"accuracy": float, "examples": int, "seconds": float}``.

    Raises:
      PruningError: the file cannot be loaded, has no output called ``output``
        (several and ``output`` is ''), or the dataset is empty.
    """
    try:
        interpreter = Interpreter(model_path=path, num_threads=num_threads)
    except ValueError as e:
        raise PruningError(f"LiteRT cannot load {path}: {e}") from e
    (inp,), out = interpreter.get_input_details(), output_detail(interpreter, output)
    start, correct, seen = time.time(), 0, 0
    for images, labels in dataset:
        images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
        if images.shape[-1] == 1 and inp["shape"][-1] == 3:
            images = np.repeat(images, 3, axis=-1)
        (scores,) = invoke(interpreter, inp, file_input(images, inp, preprocess), [out])
        correct += int(np.sum(np.argmax(scores, axis=-1) == labels))
        seen += len(labels)
    if not seen:
        raise PruningError(f"no examples to evaluate {path} on")
    return {"accuracy": correct / seen, "examples": seen, "seconds": time.time() - start}
