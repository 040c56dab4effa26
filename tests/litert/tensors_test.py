"""Feeding and reading quantized LiteRT tensors with their own scale and zero point."""
import numpy as np

from pipeline.litert import tensors


def test_uint8_round_trip_is_exact_on_pixel_steps():
    detail = {"dtype": np.uint8, "quantization": (1 / 255, 0)}
    pixels = np.arange(256, dtype=np.float32) / 255
    np.testing.assert_array_equal(tensors.quantize_images(pixels, detail), np.arange(256))
    np.testing.assert_allclose(tensors.dequantize(np.arange(256, dtype=np.uint8), detail),
                               pixels, atol=1e-6)


def test_int8_clips_to_its_range_and_keeps_the_zero_point():
    detail = {"dtype": np.int8, "quantization": (1 / 255, -128)}
    images = np.array([-1.0, 0.0, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(tensors.quantize_images(images, detail), [-128, -128, 127, 127])
    assert tensors.dequantize(np.array([-128], np.int8), detail)[0] == 0.0


def test_float_tensors_pass_through_as_their_dtype():
    detail = {"dtype": np.float32, "quantization": (0.0, 0)}
    images = np.array([0.25, -3.0], np.float64)
    out = tensors.quantize_images(images, detail)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, images.astype(np.float32))
    assert tensors.dequantize(np.array([1.5], np.float16), detail).dtype == np.float32


def test_file_input_by_dtype_given_the_preprocessing():
    """Float files take the model's input in R, G, B order; integer files raw pixels."""
    from pipeline.data import preprocess
    pixels = np.array([[[[10.0, 20.0, 30.0]]]], np.float32)  # R, G, B
    caffe = preprocess.IMAGENET_CAFFE
    model_input = caffe.from_pixels(pixels)  # B, G, R minus the B, G, R means
    float_detail = {"dtype": np.float32, "quantization": (0.0, 0)}
    mean, std = caffe.normalization()
    np.testing.assert_allclose(tensors.file_input(model_input, float_detail, caffe),
                               (pixels - mean) / std, atol=1e-4)
    uint8_detail = {"dtype": np.uint8, "quantization": (1 / 255, 0)}
    fed = tensors.file_input(model_input, uint8_detail, caffe)
    assert fed.dtype == np.uint8
    np.testing.assert_array_equal(fed, pixels.astype(np.uint8))
    symmetric = preprocess.SYMMETRIC.from_pixels(np.arange(256, dtype=np.float32))
    np.testing.assert_array_equal(tensors.file_input(symmetric, uint8_detail, preprocess.SYMMETRIC),
                                  np.arange(256))


def test_file_input_without_a_preprocessing_is_quantize_images():
    detail = {"dtype": np.uint8, "quantization": (1 / 255, 0)}
    images = np.linspace(0, 1, 11, dtype=np.float32)
    np.testing.assert_array_equal(tensors.file_input(images, detail),
                                  tensors.quantize_images(images, detail))
