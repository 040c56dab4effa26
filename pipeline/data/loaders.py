"""Data set loaders: image classification data sets as uint8 arrays, found by name.

A loader is a function ``fn(data_dir, image_size, channels) -> Splits``
registered under a name with :func:`register_loader`; :func:`load` looks it up
and checks what it returned (shapes, labels inside the classes). Three are
built in: ``fashion_mnist`` (IDX files), ``cifar10`` (the python batches) and
``folder`` (your own images, one folder per class). The tf.data pipelines
built on top live in :mod:`pipeline.data.datasets`.

Errors name the Python argument to change (``data_dir=...``) and carry it in
``DataError.argument``.

Example:
  >>> from pipeline.data import loaders
  >>> splits = loaders.load("fashion_mnist")
  >>> splits.x_train.shape, splits.class_names[:2]
  ((60000, 28, 28, 1), ('T-shirt/top', 'Trouser'))
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import zlib
from typing import Callable

import numpy as np
import tf_keras

from pipeline.data import images
from pipeline.errors import PruningError
from pipeline.registry import Registry

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
CIFAR10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
FOLDER_TEST_FRACTION = 0.2


class DataError(PruningError):
    """A data set is missing, unreadable, or its options are invalid."""


@dataclasses.dataclass(frozen=True)
class Splits:
    """A loaded data set: uint8 images ``(N, H, W, C)`` and int labels.

    ``x_train`` and ``x_test`` are arrays, or :class:`pipeline.data.images.ImageFiles`
    listings that index and report their shape as the arrays would (the
    ``folder`` loader's, whose images stay on disk).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


Loader = Callable[[str, int, int], Splits]
_LOADERS: Registry[Loader] = Registry("data set")


def register_loader(name: str):
    """Decorator registering ``fn(data_dir, image_size, channels) -> Splits``.

    Raises:
      RegistryError: ``name`` is already registered.
    """
    return _LOADERS.register(name)


def loader_names() -> list[str]:
    """The registered data set names, sorted."""
    return _LOADERS.names()


def load(name: str, data_dir: str = "", image_size: int = 0, channels: int = 0) -> Splits:
    """Loads the data set registered as ``name`` as uint8 arrays.

    Args:
      name: one of :func:`loader_names`.
      data_dir: where its files are ('' = the loader's default places).
      image_size: for ``folder``: the side images are resized to.
      channels: for ``folder``: 1 (grayscale) or 3 (RGB); 0 = RGB.

    Returns:
      The checked :class:`Splits`.

    Raises:
      RegistryError: unknown name.
      DataError: the files are missing or unreadable, or hold images or labels
        of the wrong shape or labels outside the classes.
    """
    splits = _LOADERS.get(name)(data_dir, image_size, channels)
    _check_splits(splits, name, data_dir)
    return splits


def _check_splits(splits: Splits, name: str, data_dir: str) -> None:
    """Raises :class:`DataError` unless images are (N, H, W, 1 or 3), labels index the classes."""
    where = f"{name} data" + (f" in data_dir={data_dir!r}" if data_dir else "")
    fix = f"pass data_dir=<a folder of intact {name} files>"
    shapes = {}
    for split, x, y in (("train", splits.x_train, splits.y_train),
                        ("test", splits.x_test, splits.y_test)):
        if x.ndim != 4 or x.shape[-1] not in (1, 3) or not len(x):
            raise DataError(f"{where}: {split} images have shape {x.shape}, expected "
                            f"(N, height, width, 1 or 3) with N > 0; {fix}", argument="data_dir")
        if y.shape != (len(x),):
            raise DataError(f"{where}: {len(x)} {split} images but labels of shape {y.shape}; "
                            f"{fix}", argument="data_dir")
        if y.min() < 0 or y.max() >= len(splits.class_names):
            raise DataError(f"{where}: {split} labels run from {y.min()} to {y.max()} but there "
                            f"are {len(splits.class_names)} classes; {fix}", argument="data_dir")
        shapes[split] = x.shape[1:]
    if shapes["train"] != shapes["test"]:
        raise DataError(f"{where}: train images are {shapes['train']}, test images "
                        f"{shapes['test']}; {fix}", argument="data_dir")


@register_loader("fashion_mnist")
def fashion_mnist(data_dir: str = "", image_size: int = 0, channels: int = 0) -> Splits:
    """Fashion-MNIST from its four IDX gzip files.

    Looks in ``data_dir`` if given (and only there), else in
    ``/usr/share/datasets/fashion-mnist`` (Debian's dataset-fashion-mnist),
    else downloads with ``tf_keras.datasets.fashion_mnist.load_data()``.

    Raises:
      DataError: no copy could be found or downloaded, or a file is corrupt.
    """
    del image_size, channels  # always 28x28x1; make_datasets resizes
    directory = data_dir or FASHION_MNIST_DIR
    paths = {k: os.path.join(directory, f) for k, f in FASHION_MNIST_FILES.items()}
    if all(os.path.exists(p) for p in paths.values()):
        arrays = {k: read_idx(p) for k, p in paths.items()}
        return Splits(arrays["x_train"][..., None], arrays["y_train"].astype(np.int64),
                      arrays["x_test"][..., None], arrays["y_test"].astype(np.int64),
                      FASHION_MNIST_CLASSES)
    missing = sorted(os.path.basename(p) for p in paths.values() if not os.path.exists(p))
    if data_dir:
        raise DataError(f"Fashion-MNIST: data_dir={data_dir!r} lacks {', '.join(missing)}; "
                        "pass data_dir=<the folder holding the four IDX .gz files>",
                        argument="data_dir")
    try:
        (x_train, y_train), (x_test, y_test) = tf_keras.datasets.fashion_mnist.load_data()
    except Exception as e:  # offline: URLError, OSError, HTTP errors...
        raise DataError(
            f"Fashion-MNIST not found in {FASHION_MNIST_DIR} (missing {', '.join(missing)}) and "
            f"the download failed ({type(e).__name__}); run `apt-get install "
            "dataset-fashion-mnist` or pass data_dir=<folder with the IDX .gz files>",
            argument="data_dir") from e
    return Splits(x_train[..., None], y_train.astype(np.int64), x_test[..., None],
                  y_test.astype(np.int64), FASHION_MNIST_CLASSES)


def read_idx(path: str) -> np.ndarray:
    """Reads a (gzipped) IDX file of unsigned bytes into an array.

    Args:
      path: the file; a ``.gz`` name is read through gzip.

    Returns:
      The uint8 array, shaped as its header says.

    Raises:
      DataError: the file is unreadable, or not an IDX file of uint8 data.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # unreadable, corrupt or truncated gzip
        raise DataError(f"cannot read {path}: {e}; replace it with an intact copy (Debian: "
                        "apt-get install --reinstall dataset-fashion-mnist)") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {body.size} bytes (truncated?)")
    return body.reshape(dims)


@register_loader("cifar10")
def cifar10(data_dir: str = "", image_size: int = 0, channels: int = 0) -> Splits:
    """CIFAR-10 from ``cifar-10-batches-py`` in ``data_dir``, else downloaded.

    ``data_dir`` may be the extracted ``cifar-10-batches-py`` folder itself or
    the folder holding it.

    Raises:
      DataError: not found in ``data_dir`` and not downloadable.
    """
    del image_size, channels
    if data_dir:
        folder = os.path.join(data_dir, "cifar-10-batches-py")
        folder = folder if os.path.isdir(folder) else data_dir
        missing = [n for n in CIFAR10_BATCHES if not os.path.exists(os.path.join(folder, n))]
        if missing:
            raise DataError(f"CIFAR-10: {folder} (from data_dir={data_dir!r}) lacks the python "
                            f"batches {missing}; pass data_dir=<the extracted "
                            "cifar-10-batches-py folder>", argument="data_dir")
        train = [_cifar_batch(os.path.join(folder, n)) for n in CIFAR10_BATCHES[:5]]
        x_test, y_test = _cifar_batch(os.path.join(folder, "test_batch"))
        return Splits(np.concatenate([t[0] for t in train]),
                      np.concatenate([t[1] for t in train]), x_test, y_test, CIFAR10_CLASSES)
    try:
        (x_train, y_train), (x_test, y_test) = tf_keras.datasets.cifar10.load_data()
    except Exception as e:
        raise DataError(f"CIFAR-10 download failed ({type(e).__name__}); pass "
                        "data_dir=<folder with cifar-10-batches-py>", argument="data_dir") from e
    return Splits(x_train, y_train.reshape(-1).astype(np.int64), x_test,
                  y_test.reshape(-1).astype(np.int64), CIFAR10_CLASSES)


def _cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch[b"labels"], np.int64)


@register_loader("folder")
def folder(data_dir: str = "", image_size: int = 0, channels: int = 0) -> Splits:
    """Your own images: ``data_dir/train/<class>/*`` and ``data_dir/test/<class>/*``.

    Without a ``test`` folder, ``data_dir`` itself holds the class folders and
    a seeded 20% of it becomes the test split. The images stay on disk: the
    splits hold :class:`pipeline.data.images.ImageFiles` listings, which
    :func:`pipeline.data.datasets.make_datasets` streams (or decodes into
    memory when they fit), resized to ``image_size``.

    Raises:
      DataError: ``data_dir`` is unset or holds no images, or a file named as
        an image is not one.
    """
    if not data_dir or not os.path.isdir(data_dir):
        raise DataError(f"the folder data set needs data_dir=<folder of class folders>; got "
                        f"data_dir={data_dir!r}", argument="data_dir")
    size = int(image_size) or 224
    channels = 1 if channels == 1 else 3
    train_dir, test_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        train, test = _scan(train_dir, size, channels), _scan(test_dir, size, channels)
        if test.class_names != train.class_names:
            raise DataError(f"{test_dir} has classes {test.class_names}, {train_dir} has "
                            f"{train.class_names}; give the train and test folders of data_dir "
                            "the same class folders", argument="data_dir")
    else:
        files = _scan(data_dir, size, channels)
        order = np.random.default_rng(0).permutation(len(files))
        cut = max(1, int(round(len(files) * FOLDER_TEST_FRACTION)))
        test, train = files[np.sort(order[:cut])], files[np.sort(order[cut:])]
    return Splits(train, train.labels, test, test.labels, train.class_names)


def _scan(path: str, size: int, channels: int) -> images.ImageFiles:
    try:
        return images.scan(path, size, channels)
    except images.ImageFileError as e:
        raise DataError(str(e), argument=e.argument) from e
