"""Data loaders on small files made here, and the tf.data pipelines."""
import gzip
import os
import pickle

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from pipeline.data import datasets as data
from pipeline.data.datasets import DataError


def write_idx(path, array):
    """Writes ``array`` (uint8) as a gzipped IDX file, as the Fashion-MNIST files are."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture
def fashion_dir(tmp_path):
    """A Fashion-MNIST folder of 120 training and 40 test images; image i has value i."""
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (120, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    x_test[:, 0, 0] = np.arange(40)  # marks the file order
    arrays = {"x_train": x_train, "y_train": np.arange(120, dtype=np.uint8) % 10,
              "x_test": x_test, "y_test": np.arange(40, dtype=np.uint8) % 10}
    for key, name in data.FASHION_MNIST_FILES.items():
        write_idx(tmp_path / name, arrays[key])
    return tmp_path


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "a.gz")), array)


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00"))
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes"):
        data.read_idx(str(tmp_path / "bad.gz"))
    write_idx(tmp_path / "short.gz", np.zeros((4, 2), np.uint8))
    raw = gzip.decompress((tmp_path / "short.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-3]))
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(str(tmp_path / "short.gz"))


def test_fashion_mnist_from_a_folder(fashion_dir):
    splits = data.load("fashion_mnist", str(fashion_dir))
    assert splits.x_train.shape == (120, 28, 28, 1) and splits.x_train.dtype == np.uint8
    assert splits.x_test.shape == (40, 28, 28, 1)
    assert splits.y_train.dtype == np.int64 and len(splits.class_names) == 10


def test_missing_folder_names_path_and_fix(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path} lacks .*--config.data.dir"):
        data.load("fashion_mnist", str(tmp_path))


def test_missing_system_copy_and_no_download_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", str(tmp_path / "none"))

    def offline():
        raise OSError("network is unreachable")
    monkeypatch.setattr(tf_keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DataError) as error:
        data.load("fashion_mnist")
    message = str(error.value)
    assert str(tmp_path / "none") in message
    assert "apt-get install dataset-fashion-mnist" in message and "--config.data.dir" in message


def test_unknown_data_set_lists_names():
    with pytest.raises(pipeline.RegistryError, match="cifar10, fashion_mnist, folder"):
        data.load("mnist")


def test_pipelines_shapes_splits_and_scaling(fashion_dir):
    ds = data.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=16,
                            val_split=0.25, flip=True, shift=2, seed=1)
    assert ds.sizes == {"train": 90, "val": 30, "test": 40}
    assert ds.steps_per_epoch == 5 and ds.input_shape == (28, 28, 1) and ds.num_classes == 10
    images, labels = next(iter(ds.train))
    assert images.shape == (16, 28, 28, 1) and images.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    test_images = np.concatenate([x.numpy() for x, _ in ds.test])
    np.testing.assert_allclose(test_images[:, 0, 0, 0] * 255, np.arange(40), atol=1e-4)
    assert sum(int(y.shape[0]) for _, y in ds.val) == 30
    assert ds.calibration.element_spec[0].shape == (28, 28, 1)


def test_train_pipeline_is_seeded(fashion_dir):
    def first_batches(seed):
        ds = data.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=16,
                                flip=True, shift=2, seed=seed)
        it = iter(ds.train)
        return [next(it)[0].numpy() for _ in range(8)]  # crosses an epoch boundary
    tf.random.set_seed(5)
    a = first_batches(3)
    tf.random.set_seed(5)
    b = first_batches(3)
    tf.random.set_seed(5)
    c = first_batches(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], a[6])  # a new epoch is reshuffled/augmented anew


def test_augmentation_flips_and_shifts_by_at_most_shift():
    image = np.zeros((1, 6, 6, 1), np.float32)
    image[0, 2, 1, 0] = 1.0
    flipped = data._augmenter(flip=True, shift=0, seed=0)
    outputs = {tuple(np.argwhere(flipped(tf.constant(image)).numpy()[0, ..., 0])[0])
               for _ in range(20)}
    assert outputs == {(2, 1), (2, 4)}
    shifted = data._augmenter(flip=False, shift=1, seed=0)
    for _ in range(20):
        out = shifted(tf.constant(image)).numpy()
        assert out.sum() == 1.0
        r, c = np.argwhere(out[0, ..., 0])[0]
        assert abs(r - 2) <= 1 and abs(c - 1) <= 1


def test_resize_and_channel_conversion(fashion_dir):
    ds = data.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=8,
                            image_size=32, channels=3, subset=50, test_subset=10)
    assert ds.input_shape == (32, 32, 3)
    assert ds.sizes == {"train": 45, "val": 5, "test": 10}
    images, _ = next(iter(ds.test))
    assert images.shape == (8, 32, 32, 3)
    np.testing.assert_allclose(images[..., 0], images[..., 2])


def test_bad_options_raise(fashion_dir):
    with pytest.raises(DataError, match="val_split"):
        data.make_datasets("fashion_mnist", data_dir=str(fashion_dir), val_split=1.0)
    with pytest.raises(DataError, match="fewer than one batch"):
        data.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=500)


def test_cifar10_from_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 b"labels": [0, 1, 2, 9]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    splits = data.load("cifar10", str(tmp_path))
    assert splits.x_train.shape == (20, 32, 32, 3) and splits.x_test.shape == (4, 32, 32, 3)
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)[b"data"][0]
    np.testing.assert_array_equal(splits.x_test[0, 0, 0], raw[[0, 1024, 2048]])  # R, G, B


def test_folder_of_images(tmp_path):
    for split, count in (("train", 6), ("test", 2)):
        for label in ("cat", "dog"):
            os.makedirs(tmp_path / split / label)
            for i in range(count):
                png = tf.io.encode_png(tf.fill([10, 12, 3], tf.constant(40 * i, tf.uint8)))
                (tmp_path / split / label / f"{i}.png").write_bytes(png.numpy())
    splits = data.load("folder", str(tmp_path), image_size=16, channels=1)
    assert splits.class_names == ("cat", "dog")
    assert splits.x_train.shape == (12, 16, 16, 1) and splits.x_test.shape == (4, 16, 16, 1)
    assert sorted(splits.y_train.tolist()) == [0] * 6 + [1] * 6
    with pytest.raises(DataError, match="needs --config.data.dir"):
        data.load("folder", "")


@pytest.mark.skipif(not os.path.isdir(data.FASHION_MNIST_DIR),
                    reason="apt-get install dataset-fashion-mnist")
def test_the_installed_fashion_mnist():
    splits = data.load("fashion_mnist")
    assert splits.x_train.shape == (60000, 28, 28, 1) and splits.x_test.shape == (10000, 28, 28, 1)
    assert set(np.unique(splits.y_test)) == set(range(10))
    assert np.bincount(splits.y_train).tolist() == [6000] * 10
