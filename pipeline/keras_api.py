"""The public Keras package a model belongs to: ``tf_keras`` (Keras 2) or ``keras`` (Keras 3).

The run trains, distils and exports a model in its own Keras: the optimizers,
losses, callbacks and layers it makes for a model come from :func:`of` that
model, never from a fixed import. Only the public API of either package is
used through it (``K.optimizers.SGD``, ``K.callbacks.EarlyStopping``,
``K.Model``...), which both spell alike; where they differ, the caller asks
:func:`is_keras3`. Keras 3 is imported only once a Keras 3 object is seen, so
a tf_keras run never loads it.

Example:
  >>> from pipeline import keras_api
  >>> K = keras_api.of(model)
  >>> model.compile(optimizer=K.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import zipfile
from types import ModuleType

from pipeline.errors import UnsupportedModelError

PACKAGES = ("tf_keras", "keras")


def of(obj) -> ModuleType:
    """The Keras package (``tf_keras`` or ``keras``) whose classes ``obj`` is built from.

    Args:
      obj: a Keras model, layer, optimizer, callback or other Keras object.

    Raises:
      UnsupportedModelError: ``obj`` comes from neither package.
    """
    package = package_of(type(obj))
    if package is None:
        raise UnsupportedModelError(
            f"expected a Keras object (tf_keras or Keras 3), got "
            f"{type(obj).__module__}.{type(obj).__name__}")
    return importlib.import_module(package)


def is_keras3(obj) -> bool:
    """Whether ``obj`` is a Keras 3 object (not tf_keras)."""
    return package_of(type(obj)) == "keras"


def package_of(cls: type) -> str | None:
    """``"tf_keras"`` or ``"keras"``: the Keras package ``cls`` (or a base of it) comes from.

    None for a class of neither (a plain Python or TensorFlow class).
    """
    for base in cls.__mro__:
        package = base.__module__.split(".")[0]
        if package in PACKAGES:
            return package
    return None


def describe(obj) -> str:
    """``"Keras 3.15.1"`` or ``"tf_keras 2.21.0"``: the Keras ``obj`` is from, with its version."""
    module = of(obj)
    return f"{'Keras' if module.__name__ == 'keras' else 'tf_keras'} {module.__version__}"


def named(package: str) -> ModuleType:
    """The package called ``package`` (``"tf_keras"`` or ``"keras"``), imported.

    Raises:
      UnsupportedModelError: another name.
    """
    if package not in PACKAGES:
        raise UnsupportedModelError(f"Keras package must be one of {PACKAGES}, got {package!r}")
    return importlib.import_module(package)


def copy_model(model, weights=None):
    """A new model of ``model``'s architecture (Keras' ``clone_model``, in its own Keras)
    holding ``model``'s weights, or ``weights`` (a list in ``get_weights`` order) if given."""
    copy = of(model).models.clone_model(model)
    copy.set_weights(model.get_weights() if weights is None else weights)
    return copy


def layers_within(layer) -> list:
    """``layer`` and every layer it holds, at any depth, each parent before its own layers.

    Sees what ``Model.layers`` does not: the layers a custom (non-Model) layer
    keeps as attributes, such as a BatchNormalization inside a residual block.
    Neither Keras has a public walk for them; this calls the layer-tracking
    ``_flatten_layers``, which both spell alike and which both Kerases' own
    ``trainable`` setters and weight collection are built on.
    """
    return list(layer._flatten_layers(include_self=True, recursive=True))


def set_random_seed(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and every Keras loaded so far.

    Keras 3 draws initial weights and dropout masks from its own seed
    generator, which ``tf_keras.utils.set_random_seed`` does not reach. If
    Keras 3 is imported later, its generator starts from Python's seeded
    ``random``, so the order of imports does not change the weights.
    """
    import tf_keras  # noqa: PLC0415  (tf_keras is always there: pipeline selects it)

    tf_keras.utils.set_random_seed(seed)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)


def file_keras_version(path: str) -> str:
    """The Keras version a model file records: a ``.keras`` archive's ``metadata.json``
    or an HDF5 file's ``keras_version`` attribute ('' if none, a folder, or unreadable)."""
    if os.path.isdir(path):
        return ""  # a SavedModel folder: tf_keras's format
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
        import h5py  # noqa: PLC0415  (a dependency of both Kerases)

        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version", "")
        return version.decode() if isinstance(version, bytes) else str(version)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return ""  # damaged: loading says what is wrong


def file_package(path: str) -> str:
    """``"keras"`` for a file Keras 3 saved (its recorded version is 3 or later), else
    ``"tf_keras"`` (Keras 2 files, SavedModel folders, files that record no version).

    Decided from the file's own metadata, never by trying to load it.
    """
    head = file_keras_version(path).split(".")[0]
    return "keras" if head.isdigit() and int(head) >= 3 else "tf_keras"


def load_model(path: str):
    """The uncompiled model at ``path``, in the Keras that saved it (:func:`file_package`).

    Raises:
      Whatever that Keras raises for a file it cannot read.
    """
    if file_package(path) == "keras":
        return named("keras").saving.load_model(path, compile=False)
    return named("tf_keras").models.load_model(path, compile=False)
