"""Loads a Keras model file, telling a missing, empty, foreign or damaged file apart.

The file is loaded in the Keras that saved it, read from its own metadata
(:func:`pipeline.keras_api.file_package`): a Keras 3 ``.keras`` (or ``.h5``)
file as a Keras 3 model, a Keras 2 one as a tf_keras model.
``tf_keras.models.load_model`` reports a text file, a PNG, an empty or a
truncated ``.keras`` alike ("file signature not found") and a damaged zip
with a traceback from deep inside ``zipfile``. :func:`load` looks at the
path first (exists, folder with ``saved_model.pb``, size, leading bytes),
then loads, and raises :class:`~pipeline.errors.ModelFileError` with one
line naming the file, what is wrong with it and what to do.

Example:
  >>> from pipeline.run import model_file
  >>> model = model_file.load("models/weights/vgg_fashion_mnist.keras")
"""
from __future__ import annotations

import os

from pipeline import keras_api
from pipeline.errors import ModelFileError

_FIX = ("point config.model.path at a .keras or .h5 file saved by Keras 3 or tf_keras, or a "
        "SavedModel folder saved by tf_keras")
_MAGIC = (
    (b"PK\x03\x04", "zip"),  # .keras
    (b"\x89HDF\r\n\x1a\n", "hdf5"),  # .h5
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"TFL3", "a TFLite flatbuffer"),
)


def sniff(path: str) -> str:
    """What a file's leading bytes say it is: ``zip``, ``hdf5``, ``a PNG image``, ``a text file``...

    A ``.tflite`` flatbuffer carries its ``TFL3`` identifier at offset 4.
    """
    with open(path, "rb") as f:
        head = f.read(512)
    for magic, kind in _MAGIC:
        if head.startswith(magic) or head[4:].startswith(magic):
            return kind
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a model format Keras knows"
    return "a text file" if b"\x00" not in head else "not a model format Keras knows"


def check(path: str) -> None:
    """Raises :class:`ModelFileError` unless ``path`` looks like a Keras model (without loading)."""
    if not path or not os.path.exists(path):
        raise ModelFileError(f"config.model.path={path!r} does not exist; {_FIX}")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ModelFileError(f"model folder {path} holds no saved_model.pb, so it is not a "
                                 f"SavedModel; {_FIX}")
        return
    try:
        size = os.path.getsize(path)
        kind = sniff(path) if size else ""
    except OSError as e:
        raise ModelFileError(f"cannot read the model file {path}: {e.strerror}; check its "
                             "permissions") from e
    if not size:
        raise ModelFileError(f"model file {path} is empty (0 bytes): the copy or save that made "
                             f"it failed; {_FIX}")
    if kind not in ("zip", "hdf5"):
        raise ModelFileError(f"model file {path} is {kind}, not a Keras model; {_FIX}")
    if keras_api.file_package(path) == "keras":
        _check_keras3_file(path, keras_api.file_keras_version(path))


def _check_keras3_file(path: str, version: str) -> None:
    """Raises :class:`ModelFileError` if a newer Keras 3 than the installed one saved ``path``."""
    import keras  # noqa: PLC0415  (Keras 3 only for Keras 3 files)

    installed = keras.__version__
    if _release(version) > _release(installed):
        raise ModelFileError(
            f"model file {path} was saved by Keras {version}, newer than the installed Keras "
            f"{installed}: install keras>={version} (pip install 'keras=={version}') or save "
            f"the model again with Keras {installed}")


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def load(path: str):
    """Loads the model at ``path`` (uncompiled), in the Keras that saved it.

    Raises:
      ModelFileError: missing, empty, not a Keras model, truncated or corrupt.
    """
    check(path)
    try:
        return keras_api.load_model(path)
    except Exception as e:  # zipfile, h5py, JSON and deserialisation errors all mean "damaged"
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ModelFileError(
            f"cannot load the Keras model {path}: it is truncated, corrupt or was saved by "
            f"an incompatible Keras ({type(e).__name__}: {reason}); save or copy it again") from e
