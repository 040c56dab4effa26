"""The tf.data pipelines: splits, scaling, seeding, augmentation and option checks."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
from pipeline.data import datasets
from pipeline.data import preprocess
from pipeline.data.loaders import DataError


def test_pipelines_shapes_splits_and_scaling(fashion_dir):
    ds = datasets.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=16,
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
        ds = datasets.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=16,
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
    flipped = datasets._augmenter(flip=True, shift=0, seed=0)
    outputs = {tuple(np.argwhere(flipped(tf.constant(image)).numpy()[0, ..., 0])[0])
               for _ in range(20)}
    assert outputs == {(2, 1), (2, 4)}
    shifted = datasets._augmenter(flip=False, shift=1, seed=0)
    for _ in range(20):
        out = shifted(tf.constant(image)).numpy()
        assert out.sum() == 1.0
        r, c = np.argwhere(out[0, ..., 0])[0]
        assert abs(r - 2) <= 1 and abs(c - 1) <= 1


def test_resize_and_channel_conversion(fashion_dir):
    ds = datasets.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=8,
                                image_size=32, channels=3, subset=50, test_subset=10)
    assert ds.input_shape == (32, 32, 3)
    assert ds.sizes == {"train": 45, "val": 5, "test": 10}
    images, _ = next(iter(ds.test))
    assert images.shape == (8, 32, 32, 3)
    np.testing.assert_allclose(images[..., 0], images[..., 2])


@pytest.mark.parametrize("option, value, message", [
    ("val_split", 1.0, r"val_split=1.0 must be in \[0, 1\)"),
    ("batch_size", 0, "batch_size=0 must be >= 1"),
    ("subset", -1, "subset=-1 must be >= 0"),
    ("test_subset", -2, "test_subset=-2 must be >= 0"),
    ("shift", -1, "shift=-1 must be >= 0"),
    ("channels", 2, r"channels=2 must be 0 \(the data's own\), 1 or 3"),
    ("batch_size", 500, "108 training examples are fewer than one batch of batch_size=500; "
                        "pass batch_size=<108 or less>"),
])
def test_bad_options_name_the_argument(fashion_dir, option, value, message):
    with pytest.raises(DataError, match=message) as error:
        datasets.make_datasets("fashion_mnist", data_dir=str(fashion_dir), **{option: value})
    assert error.value.argument == option and "config" not in str(error.value)


def test_symmetric_preprocessing_yields_minus_one_to_one(fashion_dir):
    ds = datasets.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=16,
                                shift=2, preprocess=preprocess.from_settings("symmetric"))
    assert ds.preprocess.name == "symmetric"
    test_images = np.concatenate([x.numpy() for x, _ in ds.test])
    np.testing.assert_allclose(test_images[:, 0, 0, 0], np.arange(40) / 127.5 - 1, atol=1e-6)
    train = np.concatenate([next(iter(ds.train))[0].numpy() for _ in range(3)])
    assert -1.0 <= train.min() and train.max() <= 1.0
    # A shift pads with black (pixel 0, i.e. -1 here), not with the model's zero.
    assert np.isclose(train, -1.0).sum() > 0 and not np.isclose(train, 0.0).any()
    (image, _), = ds.calibration.take(1)
    assert float(tf.reduce_min(image)) >= -1.0


def test_per_channel_preprocessing_on_rgb_images(fashion_dir):
    torch = preprocess.from_settings("imagenet_torch")
    ds = datasets.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=8,
                                channels=3, preprocess=torch)
    images = np.concatenate([x.numpy() for x, _ in ds.test])
    np.testing.assert_allclose(images[:, 0, 0], torch.from_pixels(
        np.repeat(np.arange(40, dtype=np.float32)[:, None], 3, axis=1)), atol=1e-5)
    caffe = datasets.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=8,
                                   channels=3, preprocess=preprocess.IMAGENET_CAFFE)
    first = next(iter(caffe.test))[0].numpy()[:, 0, 0]  # B, G, R minus the B, G, R means
    np.testing.assert_allclose(first, np.arange(8)[:, None] - [103.939, 116.779, 123.68],
                               atol=1e-3)


def test_a_3_channel_preprocessing_of_a_1_channel_input_names_the_argument(fashion_dir):
    with pytest.raises(preprocess.PreprocessError, match="model input has 1 channel") as error:
        datasets.make_datasets("fashion_mnist", data_dir=str(fashion_dir), batch_size=8,
                               preprocess=preprocess.IMAGENET_TORCH)
    assert error.value.argument == "preprocess"
