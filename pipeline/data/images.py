"""Image files on disk: a folder of class folders, listed once and decoded as tf.data reads them.

:func:`scan` lists ``<dir>/<class>/**/<image>`` (class folders sorted by
name, as Keras' ``image_dataset_from_directory`` numbers them) and checks
each file's first bytes, so a stray text file or a renamed document fails up
front with its path instead of mid-training. :class:`ImageFiles` is the
listing: it indexes, slices and reports its shape like the uint8 array it
stands for, so the split and subset code treats both alike, and
:meth:`ImageFiles.dataset` decodes and resizes the images on the fly. The
decoded pixels are those ``image_dataset_from_directory`` gives (the same
decoder and bilinear resize), rounded to uint8.

Example:
  >>> from pipeline.data import images
  >>> files = images.scan("photos/train", size=64, channels=3)
  >>> files.shape, files.class_names[:2]
  ((2000, 64, 64, 3), ('cat', 'dog'))
  >>> pixels, label = next(iter(files.dataset()))
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from pipeline.errors import PruningError

EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# First bytes of each format tf.io.decode_image reads.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


class ImageFileError(PruningError):
    """A folder holds no images, or a file that is not an image."""


@dataclasses.dataclass(frozen=True, eq=False)
class ImageFiles:
    """Image files and their labels, standing for the uint8 array ``(N, size, size, channels)``.

    Attributes:
      paths: one path per image.
      labels: int64 class index per image.
      class_names: one name per class (the class folder names).
      size: the side the images are resized to.
      channels: 1 (grayscale) or 3 (RGB).
    """

    paths: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    size: int
    channels: int

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> "ImageFiles":
        """The files at ``index`` (an index array, a boolean mask or a slice)."""
        return dataclasses.replace(self, paths=self.paths[index], labels=self.labels[index])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The shape of the decoded array: ``(N, size, size, channels)``."""
        return (len(self), self.size, self.size, self.channels)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def nbytes(self) -> int:
        """Bytes the decoded uint8 images take."""
        return int(np.prod(self.shape))

    def dataset(self, shuffle_seed: int | None = None) -> tf.data.Dataset:
        """``(uint8 image, int64 label)`` pairs, decoded and resized in parallel, in order.

        Args:
          shuffle_seed: if given, the files are shuffled (seeded, anew each
            epoch) and repeated forever before decoding, so that only paths,
            never decoded images, wait in the shuffle buffer.
        """
        files = tf.data.Dataset.from_tensor_slices((self.paths, self.labels))
        if shuffle_seed is not None:
            files = files.shuffle(len(self), seed=shuffle_seed,
                                  reshuffle_each_iteration=True).repeat()
        return files.map(lambda path, label: (self.decode(path), label),
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def decode(self, path: tf.Tensor) -> tf.Tensor:
        """The image at ``path`` as uint8 ``(size, size, channels)``."""
        image = tf.io.decode_image(tf.io.read_file(path), channels=self.channels,
                                   expand_animations=False)
        image.set_shape([None, None, self.channels])

        def resize():
            resized = tf.image.resize(image, (self.size, self.size))
            return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
        # At its size already, bilinear resizing is the identity: skip it, half the cost.
        same = tf.reduce_all(tf.shape(image)[:2] == self.size)
        return tf.cond(same, lambda: image, resize)

    def load(self, batch_size: int = 256) -> np.ndarray:
        """Decodes every image into one uint8 array (for sets that fit in memory)."""
        batches = [x.numpy() for x, _ in self.dataset().batch(batch_size)]
        return np.concatenate(batches) if batches else np.zeros(self.shape, np.uint8)


def scan(directory: str, size: int, channels: int) -> ImageFiles:
    """Lists the images of ``directory``'s class folders, label = class folder.

    Args:
      directory: holds one folder per class, each with images (subfolders too).
      size: side the images are resized to.
      channels: 1 (grayscale) or 3 (RGB).

    Returns:
      The :class:`ImageFiles`, sorted by class, then path.

    Raises:
      ImageFileError: no class folder holds an image, or a file named as an
        image does not start like a BMP, GIF, JPEG or PNG.
    """
    classes = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(_images_under(os.path.join(directory, name)))
        paths += found
        labels += [label] * len(found)
    if not paths:
        raise ImageFileError(f"no images in {directory}: expected class folders holding "
                             f"{', '.join(EXTENSIONS)} files; pass data_dir=<folder of class "
                             "folders holding images>", argument="data_dir")
    for path in paths:
        _check_magic(path)
    return ImageFiles(np.asarray(paths), np.asarray(labels, np.int64), tuple(classes),
                      int(size), int(channels))


def _images_under(folder: str):
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            if name.lower().endswith(EXTENSIONS):
                yield os.path.join(root, name)


def _check_magic(path: str) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ImageFileError(f"cannot read {path}: {e}; fix its permissions or remove it",
                             argument="data_dir") from e
    if not head.startswith(_MAGIC):
        raise ImageFileError(f"{path} is not a BMP, GIF, JPEG or PNG image (it starts with "
                             f"{head[:4]!r}); remove it from the data folder or convert it",
                             argument="data_dir")
