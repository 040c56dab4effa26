"""Data set loaders on small files made here; their errors name the Python argument."""
import gzip
import os
import pickle

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from bad_inputs import write_idx
from pipeline.data import loaders
from pipeline.data.loaders import DataError


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(loaders.read_idx(str(tmp_path / "a.gz")), array)


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00"))
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes"):
        loaders.read_idx(str(tmp_path / "bad.gz"))
    write_idx(tmp_path / "short.gz", np.zeros((4, 2), np.uint8))
    raw = gzip.decompress((tmp_path / "short.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-3]))
    with pytest.raises(DataError, match="truncated"):
        loaders.read_idx(str(tmp_path / "short.gz"))


def test_fashion_mnist_from_a_folder(fashion_dir):
    splits = loaders.load("fashion_mnist", str(fashion_dir))
    assert splits.x_train.shape == (120, 28, 28, 1) and splits.x_train.dtype == np.uint8
    assert splits.x_test.shape == (40, 28, 28, 1)
    assert splits.y_train.dtype == np.int64 and len(splits.class_names) == 10


def test_missing_folder_names_the_argument_path_and_fix(tmp_path):
    with pytest.raises(DataError) as error:
        loaders.load("fashion_mnist", str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"Fashion-MNIST: data_dir='{tmp_path}' lacks t10k-images")
    assert "pass data_dir=<the folder holding the four IDX .gz files>" in message
    assert error.value.argument == "data_dir" and "config" not in message


def test_missing_system_copy_and_no_download_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "FASHION_MNIST_DIR", str(tmp_path / "none"))

    def offline():
        raise OSError("network is unreachable")
    monkeypatch.setattr(tf_keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DataError) as error:
        loaders.load("fashion_mnist")
    message = str(error.value)
    assert str(tmp_path / "none") in message
    assert "apt-get install dataset-fashion-mnist" in message and "pass data_dir=<" in message
    assert error.value.argument == "data_dir"


def test_damaged_labels_name_the_data_set_and_argument(tmp_path):
    for key, name in loaders.FASHION_MNIST_FILES.items():
        shape = (30, 28, 28) if key.startswith("x") else (30,)
        write_idx(tmp_path / name, np.full(shape, 12, np.uint8))
    with pytest.raises(DataError, match=f"fashion_mnist data in data_dir='{tmp_path}': train "
                       "labels run from 12 to 12 but there are 10 classes; pass data_dir=<"
                       ) as error:
        loaders.load("fashion_mnist", str(tmp_path))
    assert error.value.argument == "data_dir"


def test_unknown_data_set_lists_names():
    with pytest.raises(pipeline.RegistryError, match="cifar10, fashion_mnist, folder"):
        loaders.load("mnist")


def test_a_registered_loader_is_found_by_name(monkeypatch):
    monkeypatch.setattr(loaders, "_LOADERS", loaders._LOADERS.copy())

    @loaders.register_loader("ones")
    def ones(data_dir, image_size, channels):
        images = np.ones((4, 2, 2, 1), np.uint8)
        return loaders.Splits(images, np.arange(4) % 2, images, np.arange(4) % 2, ("a", "b"))
    assert "ones" in loaders.loader_names()
    assert loaders.load("ones").class_names == ("a", "b")
    with pytest.raises(pipeline.RegistryError, match="already registered"):
        loaders.register_loader("ones")(ones)


def test_cifar10_from_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in loaders.CIFAR10_BATCHES:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 b"labels": [0, 1, 2, 9]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    splits = loaders.load("cifar10", str(tmp_path))
    assert splits.x_train.shape == (20, 32, 32, 3) and splits.x_test.shape == (4, 32, 32, 3)
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)[b"data"][0]
    np.testing.assert_array_equal(splits.x_test[0, 0, 0], raw[[0, 1024, 2048]])  # R, G, B
    os.remove(folder / "data_batch_3")
    with pytest.raises(DataError, match=r"lacks the python batches \['data_batch_3'\]; pass "
                       "data_dir=<the extracted cifar-10-batches-py folder>") as error:
        loaders.load("cifar10", str(tmp_path))
    assert error.value.argument == "data_dir"


def test_folder_of_images(tmp_path):
    for split, count in (("train", 6), ("test", 2)):
        for label in ("cat", "dog"):
            os.makedirs(tmp_path / split / label)
            for i in range(count):
                png = tf.io.encode_png(tf.fill([10, 12, 3], tf.constant(40 * i, tf.uint8)))
                (tmp_path / split / label / f"{i}.png").write_bytes(png.numpy())
    splits = loaders.load("folder", str(tmp_path), image_size=16, channels=1)
    assert splits.class_names == ("cat", "dog")
    assert splits.x_train.shape == (12, 16, 16, 1) and splits.x_test.shape == (4, 16, 16, 1)
    assert sorted(splits.y_train.tolist()) == [0] * 6 + [1] * 6
    with pytest.raises(DataError, match="needs data_dir=<folder of class folders>; got "
                       "data_dir=''") as error:
        loaders.load("folder", "")
    assert error.value.argument == "data_dir"


@pytest.mark.skipif(not os.path.isdir(loaders.FASHION_MNIST_DIR),
                    reason="apt-get install dataset-fashion-mnist")
def test_the_installed_fashion_mnist():
    splits = loaders.load("fashion_mnist")
    assert splits.x_train.shape == (60000, 28, 28, 1) and splits.x_test.shape == (10000, 28, 28, 1)
    assert set(np.unique(splits.y_test)) == set(range(10))
    assert np.bincount(splits.y_train).tolist() == [6000] * 10


def test_folder_without_a_test_folder_holds_out_a_fifth(tmp_path):
    for label in ("cat", "dog"):
        os.makedirs(tmp_path / label)
        for i in range(5):
            png = tf.io.encode_png(tf.fill([8, 8, 3], tf.constant(20 * i, tf.uint8)))
            (tmp_path / label / f"{i}.png").write_bytes(png.numpy())
    splits = loaders.load("folder", str(tmp_path), image_size=8)
    assert len(splits.x_test) == 2 and len(splits.x_train) == 8
    assert splits.x_train.shape[1:] == (8, 8, 3) and splits.class_names == ("cat", "dog")
