"""The tf.data pipelines: train/val/test splits of a loaded data set, ready for ``fit``.

:func:`make_datasets` loads a data set by name (see :mod:`pipeline.data.loaders`),
carves a validation split from the training set, subsets, and builds the
pipelines: images scaled to float32 in [0, 1], shape ``(H, W, C)``, resized or
converted to the model's input when they differ, then mapped to the model's
input by its :class:`pipeline.data.preprocess.Preprocess` (``unit``, the
default, leaves them in [0, 1]). The training pipeline is shuffled (seeded),
augmented (random horizontal flip and shift, both optional, on the [0, 1]
images) and repeats forever, so one iterator serves every epoch of ``fit``
(pass ``steps_per_epoch``). The test split is only for the final numbers;
model selection uses ``val``.

A data set of image files (the ``folder`` loader's
:class:`pipeline.data.images.ImageFiles`) is decoded into memory once when it
fits ``memory_bytes``, and otherwise streamed: the file names are shuffled
and the images decoded as the pipelines are read, so memory does not grow
with the number of images. Both give the same batches.

Example:
  >>> from pipeline.data import datasets
  >>> ds = datasets.make_datasets("fashion_mnist", batch_size=128, val_split=0.1)
  >>> images, labels = next(iter(ds.train))
  >>> images.shape, ds.num_classes
  (TensorShape([128, 28, 28, 1]), 10)
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from pipeline.data import images
from pipeline.data import loaders
from pipeline.data import preprocess as preprocessing
from pipeline.data.loaders import DataError

# Decoded image files up to this size are held in memory (see make_datasets).
MEMORY_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class Datasets:
    """The pipelines :func:`make_datasets` built.

    Every split yields the model's input: images mapped by ``preprocess``.

    Attributes:
      train: augmented, shuffled, repeating batches; run ``steps_per_epoch`` per epoch.
      val: validation batches carved from the training set (empty if val_split is 0).
      test: test batches, in file order.
      calibration: unaugmented, unbatched training images (for quantization).
      input_shape: ``(H, W, C)`` of the images the pipelines yield.
      class_names: one name per class.
      sizes: examples per split: ``{"train": ..., "val": ..., "test": ...}``.
      steps_per_epoch: training batches per epoch.
      preprocess: what the images are (:class:`pipeline.data.preprocess.Preprocess`).
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    calibration: tf.data.Dataset
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    sizes: dict
    steps_per_epoch: int
    preprocess: preprocessing.Preprocess = preprocessing.UNIT

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def make_datasets(name: str = "fashion_mnist", *, data_dir: str = "", batch_size: int = 128,
                  val_split: float = 0.1, subset: int = 0, test_subset: int = 0,
                  image_size: int = 0, channels: int = 0, flip: bool = False, shift: int = 0,
                  seed: int = 0,
                  preprocess: preprocessing.Preprocess = preprocessing.UNIT,
                  memory_bytes: int = MEMORY_BYTES) -> Datasets:
    """Loads ``name`` and builds the train/val/test pipelines.

    Args:
      name: a registered data set (see :func:`pipeline.data.loaders.loader_names`).
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
      preprocess: maps the [0, 1] images to the model's input (see
        :mod:`pipeline.data.preprocess`; one mean for every channel, or 3 for
        a 3-channel input).
      memory_bytes: image files (the ``folder`` data set) are decoded into
        memory once when their uint8 pixels, the training images counted
        twice for the shuffle buffer, take at most this many bytes; larger
        sets are streamed from disk, decoded anew each epoch.

    Returns:
      The :class:`Datasets`.

    Raises:
      RegistryError: ``name`` is not a registered data set.
      DataError: missing files, or options out of range; ``argument`` names the option.
      PreprocessError: ``preprocess`` has 3 per-channel values for a 1-channel input.
    """
    _check_options(val_split=val_split, batch_size=batch_size, subset=subset,
                   test_subset=test_subset, shift=shift, channels=channels)
    splits = loaders.load(name, data_dir, image_size, channels)
    rng = np.random.default_rng(seed)
    x_train, y_train = _subset(splits.x_train, splits.y_train, subset, rng)
    x_test, y_test = _subset(splits.x_test, splits.y_test, test_subset, rng)
    x_train, x_test = _in_memory_if_it_fits(x_train, x_test, memory_bytes)
    order = rng.permutation(len(x_train))
    n_val = int(round(len(x_train) * val_split))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train_idx) < batch_size:
        raise DataError(f"{len(train_idx)} training examples are fewer than one batch of "
                        f"batch_size={batch_size}; pass batch_size=<{len(train_idx)} or less>, "
                        "or keep more examples (a larger subset or a smaller val_split)",
                        argument="batch_size")
    shape = (int(image_size or splits.x_train.shape[1]), int(image_size or splits.x_train.shape[2]),
             int(channels or splits.x_train.shape[3]))
    preprocess.check_channels(shape[2])
    unit = _preparer(shape)

    def prepare(x):
        return preprocess.from_unit(unit(x))
    augment = _augmenter(flip, shift, seed)
    x_fit, y_fit = x_train[train_idx], y_train[train_idx]
    train = (_shuffled(x_fit, y_fit, seed)
             .batch(batch_size, drop_remainder=True)
             # Sequential map: the augmentation's random stream stays in a fixed order.
             # Augmented in [0, 1], so a shift pads with black whatever the preprocessing.
             .map(lambda x, y: (preprocess.from_unit(augment(unit(x))), y))
             .prefetch(tf.data.AUTOTUNE))
    return Datasets(
        train=train,
        val=_plain(x_train[val_idx], y_train[val_idx], batch_size, prepare),
        test=_plain(x_test, y_test, batch_size, prepare),
        calibration=_plain(x_fit, y_fit, 1, prepare).unbatch(),
        input_shape=shape, class_names=tuple(splits.class_names),
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(x_test)},
        steps_per_epoch=len(train_idx) // batch_size, preprocess=preprocess)


def _check_options(*, val_split: float, batch_size: int, subset: int, test_subset: int,
                   shift: int, channels: int) -> None:
    """Raises :class:`DataError` naming the first option out of range."""
    if not 0 <= val_split < 1:
        raise DataError(f"val_split={val_split} must be in [0, 1)", argument="val_split")
    for argument, value, least in (("batch_size", batch_size, 1), ("subset", subset, 0),
                                   ("test_subset", test_subset, 0), ("shift", shift, 0)):
        if value < least:
            raise DataError(f"{argument}={value} must be >= {least}", argument=argument)
    if channels not in (0, 1, 3):
        raise DataError(f"channels={channels} must be 0 (the data's own), 1 or 3",
                        argument="channels")


def _subset(x, y, n, rng):
    if not n or n >= len(x):
        return x, y
    keep = np.sort(rng.choice(len(x), n, replace=False))
    return x[keep], y[keep]


def _in_memory_if_it_fits(x_train, x_test, memory_bytes: int):
    """Decodes image file listings into arrays when they fit ``memory_bytes``; arrays pass."""
    files = [x for x in (x_train, x_test) if isinstance(x, images.ImageFiles)]
    if not files or 2 * x_train.nbytes + x_test.nbytes > memory_bytes:
        return x_train, x_test
    return tuple(x.load() if isinstance(x, images.ImageFiles) else x for x in (x_train, x_test))


def _examples(x, y) -> tf.data.Dataset:
    """``(uint8 image, label)`` pairs of an array, or decoded from an image file listing."""
    if isinstance(x, images.ImageFiles):
        return x.dataset()
    return tf.data.Dataset.from_tensor_slices((x, y))


def _shuffled(x, y, seed: int) -> tf.data.Dataset:
    """The training examples, shuffled (seeded, anew each epoch) and repeated forever."""
    if isinstance(x, images.ImageFiles):
        return x.dataset(shuffle_seed=seed)  # shuffles paths, not decoded images
    return (tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat())


def _plain(x, y, batch_size, prepare) -> tf.data.Dataset:
    return (_examples(x, y).batch(batch_size)
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
