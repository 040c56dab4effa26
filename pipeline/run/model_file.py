"""Loads a Keras model file, telling a missing, empty, foreign or damaged file apart.

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

import json
import os
import zipfile

import tf_keras

from pipeline.errors import ModelFileError

_FIX = "point config.model.path at a .keras, .h5 or SavedModel folder saved by tf_keras"
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
        return "not a model format tf_keras knows"
    return "a text file" if b"\x00" not in head else "not a model format tf_keras knows"


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
    version = keras_version(path) if kind == "zip" else ""
    if _major(version) >= 3:
        _check_keras3_file(path, version)


def _check_keras3_file(path: str, version: str) -> None:
    import keras  # noqa: PLC0415  (Keras 3 only for Keras 3 files)

    installed = keras.__version__
    if _release(version) > _release(installed):
        raise ModelFileError(
            f"model file {path} was saved by Keras {version}, newer than the installed Keras "
            f"{installed}: install keras>={version} (pip install 'keras=={version}') or save "
            f"the model again with Keras {installed}")
    raise ModelFileError(
        f"model file {path} was saved by Keras {version} (a Keras 3 .keras file); the library "
        "prunes Keras 3 models (pipeline.prune(keras.saving.load_model(path), 0.5), see the "
        "README), but this run trains and exports tf_keras (Keras 2) models only so far: prune "
        "it with the library, or rebuild it with tf_keras and point config.model.path at that")


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def keras_version(path: str) -> str:
    """The ``keras_version`` a ``.keras`` archive's ``metadata.json`` records ('' if none)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return ""  # no metadata or a damaged archive: loading says what is wrong


def load(path: str):
    """Loads the tf_keras model at ``path`` (uncompiled).

    Raises:
      ModelFileError: missing, empty, not a Keras model, truncated or corrupt.
    """
    check(path)
    try:
        return tf_keras.models.load_model(path, compile=False)
    except Exception as e:  # zipfile, h5py, JSON and deserialisation errors all mean "damaged"
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ModelFileError(
            f"cannot load the Keras model {path}: it is truncated, corrupt or was saved by "
            f"an incompatible Keras ({type(e).__name__}: {reason}); save or copy it again") from e
