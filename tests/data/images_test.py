"""Image files: listing, checking, decoding like Keras, and streaming through make_datasets."""
import os

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from pipeline.data import datasets
from pipeline.data import images
from pipeline.data.loaders import DataError


def _write(path, pixels, fmt):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    with open(path, "wb") as f:
        f.write(encode(tf.constant(pixels, tf.uint8)).numpy())


def _folder(root, per_class=12, side=20, seed=0):
    """Two classes of random JPEG and PNG images (one RGBA), sides around ``side``."""
    rng = np.random.default_rng(seed)
    for label in ("cat", "dog"):
        for i in range(per_class):
            fmt = "png" if i % 3 == 0 else "jpg"
            channels = 4 if (fmt == "png" and i == 3) else 3
            shape = (side + i % 4, side - i % 3, channels)
            _write(os.path.join(root, label, f"{i:02d}.{fmt}"),
                   rng.integers(0, 256, shape), fmt)
    return str(root)


@pytest.mark.parametrize("channels, mode, size", [(3, "rgb", 16), (1, "grayscale", 16),
                                                 (3, "rgb", 20)])  # 20: some already 20x20
def test_decoded_pixels_are_those_keras_reads_from_the_folder(tmp_path, channels, mode, size):
    root = _folder(tmp_path)
    files = images.scan(root, size=size, channels=channels)
    keras = tf_keras.utils.image_dataset_from_directory(
        root, label_mode="int", color_mode=mode, image_size=(size, size), shuffle=False,
        batch_size=64)
    (expected, labels), = [(x.numpy(), y.numpy()) for x, y in keras]
    np.testing.assert_array_equal(files.load(), np.clip(np.round(expected), 0, 255))
    np.testing.assert_array_equal(files.labels, labels)
    assert files.class_names == tuple(keras.class_names) == ("cat", "dog")
    assert files.shape == (24, size, size, channels)
    assert files.nbytes == 24 * size * size * channels


def test_listing_indexes_like_the_array_it_stands_for(tmp_path):
    files = images.scan(_folder(tmp_path), size=8, channels=3)
    picked = files[np.array([20, 1, 5])]
    np.testing.assert_array_equal(picked.load(), files.load()[[20, 1, 5]])
    assert picked.labels.tolist() == [1, 0, 0] and len(files[:4]) == 4


def test_other_files_are_skipped_and_a_fake_image_is_named(tmp_path):
    root = _folder(tmp_path, per_class=2)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    assert len(images.scan(root, 8, 3)) == 4
    (tmp_path / "dog" / "broken.jpg").write_text("<html>404</html>")
    with pytest.raises(images.ImageFileError, match=r"dog/broken.jpg is not a BMP, GIF, JPEG "
                       r"or PNG image \(it starts with b'<htm'\); remove it") as error:
        images.scan(root, 8, 3)
    assert error.value.argument == "data_dir" and "\n" not in str(error.value)


def test_a_folder_without_images_is_refused(tmp_path):
    os.makedirs(tmp_path / "empty_class")
    with pytest.raises(images.ImageFileError, match="no images in .*expected class folders"):
        images.scan(str(tmp_path), 8, 3)


def _pipelines(root, memory_bytes):
    return datasets.make_datasets("folder", data_dir=root, batch_size=4, val_split=0.25,
                                  image_size=12, flip=True, shift=1, seed=3,
                                  memory_bytes=memory_bytes)


def test_streamed_and_in_memory_folders_yield_the_same_batches(tmp_path):
    """Streaming changes where the pixels wait, not which batches training sees."""
    root = _folder(tmp_path, per_class=10)
    streamed, held = _pipelines(root, memory_bytes=0), _pipelines(root, memory_bytes=1 << 30)
    assert streamed.sizes == held.sizes == {"train": 12, "val": 4, "test": 4}
    assert streamed.steps_per_epoch == held.steps_per_epoch == 3
    for split in ("val", "test", "calibration"):
        a = [x.numpy() for x, _ in getattr(streamed, split)]
        b = [x.numpy() for x, _ in getattr(held, split)]
        np.testing.assert_array_equal(np.stack(a), np.stack(b))
    tf.random.set_seed(0)
    a = [(x.numpy(), y.numpy()) for x, y in streamed.train.take(7)]  # past two epochs
    tf.random.set_seed(0)
    b = [(x.numpy(), y.numpy()) for x, y in held.train.take(7)]
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], a[3][0])  # each epoch is reshuffled


def test_a_streamed_folder_reads_the_disk_as_it_goes(tmp_path):
    root = _folder(tmp_path, per_class=4)
    streamed = datasets.make_datasets("folder", data_dir=root, batch_size=2, val_split=0,
                                      image_size=8, memory_bytes=0)
    before = np.concatenate([x.numpy() for x, _ in streamed.test])
    for name in os.listdir(tmp_path / "cat") + os.listdir(tmp_path / "dog"):
        for label in ("cat", "dog"):
            path = os.path.join(root, label, name)
            if os.path.exists(path):
                _write(path, np.full((8, 8, 3), 255), "png")
    after = np.concatenate([x.numpy() for x, _ in streamed.test])
    assert not np.array_equal(before, after) and np.allclose(after, 1.0)


def test_a_fake_image_fails_the_data_set_up_front(tmp_path):
    root = _folder(tmp_path, per_class=3)
    (tmp_path / "cat" / "x.png").write_bytes(b"GIF8 nonsense")
    with pytest.raises(DataError, match="cat/x.png is not a BMP") as error:
        datasets.make_datasets("folder", data_dir=root, batch_size=2)
    assert error.value.argument == "data_dir"
