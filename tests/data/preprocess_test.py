"""The named preprocessings, their inverse and metadata form, and the errors naming the argument."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
from pipeline.data import preprocess
from pipeline.data.preprocess import PreprocessError, Preprocess
from pipeline.errors import RegistryError

PIXELS = np.array([0.0, 127.5, 255.0], np.float32)


def test_the_registry_holds_the_five_names():
    assert preprocess.preprocess_names() == ["imagenet_caffe", "imagenet_torch", "mean_std",
                                             "symmetric", "unit"]
    with pytest.raises(RegistryError, match="choose one of: imagenet_caffe"):
        preprocess.from_settings("imagenet")


@pytest.mark.parametrize("name, mean, std, bgr", [
    ("unit", (0.0,), (255.0,), False),
    ("symmetric", (127.5,), (127.5,), False),
    ("imagenet_caffe", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), True),
    ("imagenet_torch", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), False),
])
def test_each_named_preprocessing(name, mean, std, bgr):
    p = preprocess.from_settings(name)
    assert p.name == name and p.bgr == bgr
    np.testing.assert_allclose(p.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(p.std, std, rtol=1e-12)
    assert p.is_unit == (name == "unit")


def test_model_input_of_raw_pixels():
    np.testing.assert_array_equal(preprocess.from_settings("unit").from_pixels(PIXELS),
                                  [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(preprocess.from_settings("symmetric").from_pixels(PIXELS),
                                  [-1.0, 0.0, 1.0])
    rgb = np.array([[10.0, 20.0, 30.0]], np.float32)  # R, G, B
    caffe = preprocess.from_settings("imagenet_caffe").from_pixels(rgb)
    np.testing.assert_allclose(caffe, [[30 - 103.939, 20 - 116.779, 10 - 123.68]], atol=1e-4)
    torch = preprocess.from_settings("imagenet_torch").from_pixels(rgb)
    np.testing.assert_allclose(
        torch, [(rgb[0] / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]], rtol=1e-5)


def test_unit_is_bit_for_bit_the_unit_image():
    x = np.random.default_rng(0).integers(0, 256, (4, 5, 5, 1)).astype(np.float32) / 255.0
    np.testing.assert_array_equal(preprocess.UNIT.from_unit(x), x)
    np.testing.assert_array_equal(preprocess.UNIT.from_unit(tf.constant(x)).numpy(), x)


@pytest.mark.parametrize("name", ["unit", "symmetric", "imagenet_caffe", "imagenet_torch"])
def test_to_unit_inverts_from_unit_on_numpy_and_tensors(name):
    p = preprocess.from_settings(name)
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(p.to_unit(p.from_unit(x)), x, atol=1e-6)
    np.testing.assert_allclose(p.from_unit(tf.constant(x)).numpy(), p.from_unit(x), atol=1e-6)
    # The model's input in R, G, B order is (pixel - mean) / std of the metadata's values.
    mean, std = p.normalization()
    np.testing.assert_allclose(p.to_rgb_order(p.from_unit(x)), (255 * x - mean) / std,
                               atol=1e-4)


def test_metadata_normalization_is_rgb_and_three_channels():
    assert preprocess.UNIT.normalization() == ([0.0] * 3, [255.0] * 3)
    mean, std = preprocess.IMAGENET_CAFFE.normalization()
    assert mean == [123.68, 116.779, 103.939] and std == [1.0] * 3  # R, G, B
    assert preprocess.SYMMETRIC.normalization(1) == ([127.5], [127.5])


def test_mean_std_takes_one_or_three_values():
    p = preprocess.from_settings("mean_std", (128,), (64,))
    assert (p.mean, p.std, p.channels) == ((128.0,), (64.0,), 1)
    np.testing.assert_allclose(p.from_pixels(PIXELS[[0, 2]]), [-2.0, 127 / 64], rtol=1e-6)
    three = preprocess.from_settings("mean_std", [1, 2, 3], [4, 5, 6])
    assert three.channels == 3 and not three.bgr


@pytest.mark.parametrize("name, mean, std, argument, message", [
    ("unit", (1.0,), (), "mean", r"'unit' fixes its own mean and std; mean=\(1.0,\) is read "
                                 "only with preprocess='mean_std'"),
    ("symmetric", (), (2.0,), "std", r"std=\(2.0,\) is read only with preprocess='mean_std'"),
    ("mean_std", (), (), "mean", "needs mean=<1 or 3 values"),
    ("mean_std", (1.0,), (), "std", "needs std=<1 or 3 values"),
    ("mean_std", (1.0, 2.0), (1.0, 2.0), "mean", "must both hold 1 value"),
    ("mean_std", (1.0,), (1.0, 2.0, 3.0), "mean", "must both hold 1 value"),
    ("mean_std", (1.0,), (0.0,), "std", r"std=\(0.0,\) must be > 0"),
    ("mean_std", (float("nan"),), (1.0,), "mean", "must be finite"),
])
def test_malformed_settings_name_the_argument(name, mean, std, argument, message):
    with pytest.raises(PreprocessError, match=message) as error:
        preprocess.from_settings(name, mean, std)
    assert error.value.argument == argument and "\n" not in str(error.value)


def test_bgr_needs_three_channels_and_per_channel_values_a_3_channel_input():
    with pytest.raises(PreprocessError, match="reorders R, G, B"):
        Preprocess("x", (1.0,), (1.0,), bgr=True)
    preprocess.IMAGENET_TORCH.check_channels(3)
    preprocess.SYMMETRIC.check_channels(1)
    with pytest.raises(PreprocessError, match="'imagenet_torch' has 3 per-channel means") as e:
        preprocess.IMAGENET_TORCH.check_channels(1)
    assert e.value.argument == "preprocess"


def test_a_preprocessing_hashes_as_its_fields():
    assert preprocess.SYMMETRIC.to_dict() == {"name": "symmetric", "mean": (127.5,),
                                              "std": (127.5,), "bgr": False}
