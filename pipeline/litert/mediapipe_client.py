"""An exported ``.tflite`` run the way an app runs it: MediaPipe Tasks' ``ImageClassifier``.

MediaPipe Tasks (Android, iOS, web and Python) reads everything from the
file: the input size and type, the normalisation ``(pixel - mean) / std`` and
the labels file in its metadata (:mod:`pipeline.export.metadata`). The client
gives it raw R, G, B pixels (``mp.Image``, ``SRGB``) and gets the class index
and name back, so nothing of this project's preprocessing is involved: if a
file's metadata or input quantization were wrong, its accuracy here would
differ from what the pipeline measured through LiteRT.

Example:
  >>> classify("tflite/pruned_int8.tflite", pixels)   # pixels: N x H x W x 3 uint8
  [(9, 'Ankle boot'), (2, 'Pullover'), ...]
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import PruningError


def classify(path: str, pixels, head: str = "") -> list[tuple[int, str]]:
    """The top-1 ``(index, label)`` of each image, by MediaPipe's ``ImageClassifier``.

    Args:
      path: a ``.tflite`` with image-classifier metadata.
      pixels: ``N x H x W x 3`` uint8 R, G, B images (a gray ``N x H x W x 1``
        batch is repeated on the three channels, as a camera frame would be).
      head: a multi-output file's classifier, by its name in the metadata
        (MediaPipe returns one classification per output, ``head_name`` that
        name); '' reads the first.

    Returns:
      One ``(index, category_name)`` per image, the name read from the file's labels.

    Raises:
      PruningError: MediaPipe cannot load the file (no or wrong metadata, say),
        or the pixels are not uint8.
    """
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core import base_options

    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] not in (1, 3):
        raise PruningError(f"classify wants N x H x W x 3 uint8 pixels, got {pixels.dtype} "
                           f"{pixels.shape}; pass np.uint8 images in [0, 255]",
                           argument="pixels")
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    options = vision.ImageClassifierOptions(
        base_options=base_options.BaseOptions(model_asset_path=str(path)), max_results=1)
    try:
        classifier = vision.ImageClassifier.create_from_options(options)
    except (RuntimeError, ValueError, OSError) as e:  # no metadata: FileNotFoundError
        raise PruningError(f"MediaPipe's ImageClassifier cannot load {path}: {e}") from e
    try:  # close() ourselves: at interpreter exit it can print a harmless TypeError
        results = []
        for image in pixels:
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
            found = classifier.classify(frame).classifications
            chosen = [c for c in found if c.head_name == head] if head else found[:1]
            if not chosen:
                raise PruningError(f"{path} has no output called {head!r} (MediaPipe read "
                                   f"{', '.join(str(c.head_name) for c in found)})",
                                   argument="head")
            (top,) = chosen[0].categories
            results.append((int(top.index), top.category_name))
        return results
    finally:
        classifier.close()
