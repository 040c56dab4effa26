"""The data stage: image classification datasets as tf.data pipelines.

Loaders are found by name (``fashion_mnist``, ``cifar10``, ``folder``) and
return uint8 arrays; :func:`make_datasets` carves a validation split from the
training set, subsets, and builds the pipelines: images scaled to float32 in
[0, 1], shape ``(H, W, C)``, resized or converted to the model's input when
they differ. The training pipeline is shuffled (seeded), augmented (random
horizontal flip and shift, both optional) and repeats forever, so one
iterator serves every epoch of ``fit`` (pass ``steps_per_epoch``). The test
split is only for the final numbers; model selection uses ``val``.

Example:
  >>> import pipeline
  >>> from pipeline import data
  >>> ds = data.make_datasets("fashion_mnist", batch_size=128, val_split=0.1)
  >>> images, labels = next(iter(ds.train))
  >>> images.shape, ds.num_classes
  (TensorShape([128, 28, 28, 1]), 10)
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import zlib
from typing import Callable

import numpy as np
import tensorflow as tf
import tf_keras

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
FOLDER_TEST_FRACTION = 0.2


class DataError(PruningError):
    """A data set is missing, unreadable, or its options are invalid."""


@dataclasses.dataclass(frozen=True)
class Splits:
    """A loaded data set: uint8 images ``(N, H, W, C)`` and int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Datasets:
    """What the data stage made.

    Attributes:
      train: augmented, shuffled, repeating batches; run ``steps_per_epoch`` per epoch.
      val: validation batches carved from the training set (empty if val_split is 0).
      test: test batches, in file order.
      calibration: unaugmented, unbatched training images (for quantization).
      input_shape: ``(H, W, C)`` of the images the pipelines yield.
      class_names: one name per class.
      sizes: examples per split: ``{"train": ..., "val": ..., "test": ...}``.
      steps_per_epoch: training batches per epoch.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    calibration: tf.data.Dataset
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    sizes: dict
    steps_per_epoch: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


Loader = Callable[[str, int, int], Splits]
_LOADERS: Registry[Loader] = Registry("data set")


def register_loader(name: str):
    """Decorator registering ``fn(data_dir, image_size, channels) -> Splits``.

    Raises:
      RegistryError: ``name`` is already registered.
    """
    return _LOADERS.register(name)


def loader_names() -> list[str]:
    return _LOADERS.names()


def load(name: str, data_dir: str = "", image_size: int = 0, channels: int = 0) -> Splits:
    """Loads the data set registered as ``name`` as uint8 arrays.

    Args:
      name: one of :func:`loader_names`.
      data_dir: where its files are ('' = the loader's default places).
      image_size: for ``folder``: the side images are resized to.
      channels: for ``folder``: 1 (grayscale) or 3 (RGB); 0 = RGB.

    Raises:
      RegistryError: unknown name.
      DataError: the files are missing or unreadable, or hold images or labels
        of the wrong shape or labels outside the classes.
    """
    splits = _LOADERS.get(name)(data_dir, image_size, channels)
    _check_splits(splits, f"{name} data" + (f" in {data_dir}" if data_dir else ""))
    return splits


def _check_splits(splits: Splits, where: str) -> None:
    """Raises :class:`DataError` unless images are (N, H, W, 1 or 3) and labels index the classes."""
    fix = "point --config.data.dir at intact files of the data set named by data.name"
    shapes = {}
    for split, x, y in (("train", splits.x_train, splits.y_train),
                        ("test", splits.x_test, splits.y_test)):
        if x.ndim != 4 or x.shape[-1] not in (1, 3) or not len(x):
            raise DataError(f"{where}: {split} images have shape {x.shape}, expected "
                            f"(N, height, width, 1 or 3) with N > 0; {fix}")
        if y.shape != (len(x),):
            raise DataError(f"{where}: {len(x)} {split} images but labels of shape {y.shape}; "
                            f"{fix}")
        if y.min() < 0 or y.max() >= len(splits.class_names):
            raise DataError(f"{where}: {split} labels run from {y.min()} to {y.max()} but there "
                            f"are {len(splits.class_names)} classes; {fix}")
        shapes[split] = x.shape[1:]
    if shapes["train"] != shapes["test"]:
        raise DataError(f"{where}: train images are {shapes['train']}, test images "
                        f"{shapes['test']}; {fix}")


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
        raise DataError(f"Fashion-MNIST: {data_dir} lacks {', '.join(missing)}; point "
                        "--config.data.dir at the folder holding the four IDX .gz files")
    try:
        (x_train, y_train), (x_test, y_test) = tf_keras.datasets.fashion_mnist.load_data()
    except Exception as e:  # offline: URLError, OSError, HTTP errors...
        raise DataError(
            f"Fashion-MNIST not found in {FASHION_MNIST_DIR} (missing {', '.join(missing)}) and "
            f"the download failed ({type(e).__name__}); run `apt-get install "
            "dataset-fashion-mnist` or pass --config.data.dir=<folder with the IDX .gz files>"
        ) from e
    return Splits(x_train[..., None], y_train.astype(np.int64), x_test[..., None],
                  y_test.astype(np.int64), FASHION_MNIST_CLASSES)


def read_idx(path: str) -> np.ndarray:
    """Reads a (gzipped) IDX file of unsigned bytes into an array.

    Raises:
      DataError: the file is not an IDX file of uint8 data.
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

    Raises:
      DataError: not found in ``data_dir`` and not downloadable.
    """
    del image_size, channels
    if data_dir:
        folder = os.path.join(data_dir, "cifar-10-batches-py")
        folder = folder if os.path.isdir(folder) else data_dir
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        if not all(os.path.exists(os.path.join(folder, n)) for n in names):
            raise DataError(f"CIFAR-10: {folder} lacks the python batches {names}; point "
                            "--config.data.dir at the extracted cifar-10-batches-py folder")
        train = [_cifar_batch(os.path.join(folder, n)) for n in names[:5]]
        x_test, y_test = _cifar_batch(os.path.join(folder, "test_batch"))
        return Splits(np.concatenate([t[0] for t in train]),
                      np.concatenate([t[1] for t in train]), x_test, y_test, CIFAR10_CLASSES)
    try:
        (x_train, y_train), (x_test, y_test) = tf_keras.datasets.cifar10.load_data()
    except Exception as e:
        raise DataError(f"CIFAR-10 download failed ({type(e).__name__}); pass "
                        "--config.data.dir=<folder with cifar-10-batches-py>") from e
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
    a seeded 20% of it becomes the test split. Images are resized to
    ``image_size`` and held in memory.

    Raises:
      DataError: ``data_dir`` is unset or holds no images.
    """
    if not data_dir or not os.path.isdir(data_dir):
        raise DataError(f"data.name='folder' needs --config.data.dir=<folder of class "
                        f"folders>; got {data_dir!r}")
    size = int(image_size) or 224
    mode = "grayscale" if channels == 1 else "rgb"
    train_dir, test_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        x_train, y_train, names = _read_folder(train_dir, size, mode)
        x_test, y_test, test_names = _read_folder(test_dir, size, mode)
        if test_names != names:
            raise DataError(f"{test_dir} has classes {test_names}, {train_dir} has {names}")
    else:
        x, y, names = _read_folder(data_dir, size, mode)
        order = np.random.default_rng(0).permutation(len(x))
        cut = max(1, int(round(len(x) * FOLDER_TEST_FRACTION)))
        x_test, y_test, x_train, y_train = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
    return Splits(x_train, y_train, x_test, y_test, names)


def _read_folder(path: str, size: int, mode: str):
    try:
        ds = tf_keras.utils.image_dataset_from_directory(
            path, labels="inferred", label_mode="int", color_mode=mode, image_size=(size, size),
            shuffle=False, batch_size=256)
    except ValueError as e:
        raise DataError(f"no images in {path}: {e}") from e
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    x = np.clip(np.round(np.concatenate(images)), 0, 255).astype(np.uint8)
    return x, np.concatenate(labels).astype(np.int64), tuple(ds.class_names)


def make_datasets(name: str = "fashion_mnist", *, data_dir: str = "", batch_size: int = 128,
                  val_split: float = 0.1, subset: int = 0, test_subset: int = 0,
                  image_size: int = 0, channels: int = 0, flip: bool = False, shift: int = 0,
                  seed: int = 0) -> Datasets:
    """Loads ``name`` and builds the train/val/test pipelines.

    Args:
      name: a registered data set (see :func:`loader_names`).
      data_dir: where its files are ('' = defaults).
      batch_size: examples per batch.
      val_split: fraction of the (subset) training set held out for validation.
      subset: keep this many training examples, picked at random (0 = all).
      test_subset: keep this many test examples, picked at random (0 = all).
      image_size: side of the model input (0 = the data's own).
      channels: channels of the model input (0 = the data's own; 1 <-> 3 converts).
      flip: random horizontal flips in training (not for digits or text).
      shift: random translation in training by up to this many pixels.
      seed: fixes the subset, the validation split, shuffling and augmentation.

    Returns:
      The :class:`Datasets`.

    Raises:
      DataError: missing files, or options out of range.
    """
    if not 0 <= val_split < 1:
        raise DataError(f"data.val_split must be in [0, 1), got {val_split}")
    if batch_size < 1 or subset < 0 or test_subset < 0 or shift < 0:
        raise DataError(f"batch_size ({batch_size}) must be >= 1 and subset ({subset}), "
                        f"test_subset ({test_subset}) and shift ({shift}) >= 0")
    if channels not in (0, 1, 3):
        raise DataError(f"model.channels must be 0 (the data's own), 1 or 3, got {channels}")
    splits = load(name, data_dir, image_size, channels)
    rng = np.random.default_rng(seed)
    x_train, y_train = _subset(splits.x_train, splits.y_train, subset, rng)
    x_test, y_test = _subset(splits.x_test, splits.y_test, test_subset, rng)
    order = rng.permutation(len(x_train))
    n_val = int(round(len(x_train) * val_split))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train_idx) < batch_size:
        raise DataError(f"{len(train_idx)} training examples are fewer than one batch of "
                        f"{batch_size}; raise data.subset or lower train.batch_size")
    shape = (int(image_size or splits.x_train.shape[1]), int(image_size or splits.x_train.shape[2]),
             int(channels or splits.x_train.shape[3]))
    prepare = _preparer(shape)
    augment = _augmenter(flip, shift, seed)
    train = (tf.data.Dataset.from_tensor_slices((x_train[train_idx], y_train[train_idx]))
             .shuffle(len(train_idx), seed=seed, reshuffle_each_iteration=True)
             .repeat()
             .batch(batch_size, drop_remainder=True)
             # Sequential map: the augmentation's random stream stays in a fixed order.
             .map(lambda x, y: (augment(prepare(x)), y))
             .prefetch(tf.data.AUTOTUNE))
    return Datasets(
        train=train,
        val=_plain(x_train[val_idx], y_train[val_idx], batch_size, prepare),
        test=_plain(x_test, y_test, batch_size, prepare),
        calibration=_plain(x_train[train_idx], y_train[train_idx], 1, prepare).unbatch(),
        input_shape=shape, class_names=tuple(splits.class_names),
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(x_test)},
        steps_per_epoch=len(train_idx) // batch_size)


def _subset(x, y, n, rng):
    if not n or n >= len(x):
        return x, y
    keep = np.sort(rng.choice(len(x), n, replace=False))
    return x[keep], y[keep]


def _plain(x, y, batch_size, prepare) -> tf.data.Dataset:
    return (tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
            .map(lambda a, b: (prepare(a), b), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def _preparer(shape):
    """uint8 batch -> float32 [0, 1] at ``shape``, resizing/converting as needed."""
    height, width, channels = shape

    def prepare(x):
        x = tf.cast(x, tf.float32) / 255.0
        if x.shape[1] != height or x.shape[2] != width:
            x = tf.clip_by_value(tf.image.resize(x, (height, width)), 0.0, 1.0)
        if x.shape[-1] == 1 and channels == 3:
            x = tf.image.grayscale_to_rgb(x)
        elif x.shape[-1] == 3 and channels == 1:
            x = tf.image.rgb_to_grayscale(x)
        return x
    return prepare


def _augmenter(flip: bool, shift: int, seed: int):
    """Batch-level random flip and shift (zero padding), vectorised over the batch."""
    def augment(x):
        batch = tf.shape(x)[0]
        if flip:
            mirror = tf.random.uniform([batch, 1, 1, 1], seed=seed) < 0.5
            x = tf.where(mirror, tf.reverse(x, axis=[2]), x)
        if shift:
            height, width = x.shape[1], x.shape[2]
            padded = tf.pad(x, [[0, 0], [shift, shift], [shift, shift], [0, 0]])
            dy = tf.random.uniform([batch], 0, 2 * shift + 1, tf.int32, seed=seed + 1)
            dx = tf.random.uniform([batch], 0, 2 * shift + 1, tf.int32, seed=seed + 2)
            rows = dy[:, None] + tf.range(height)[None]
            cols = dx[:, None] + tf.range(width)[None]
            x = tf.gather(padded, rows, axis=1, batch_dims=1)
            x = tf.gather(x, cols, axis=2, batch_dims=1)
        return x
    return augment
