"""Full-integer quantization: input quantization, int8 agreement with the float model."""
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from pipeline.export.rgb_front import with_rgb_front
from pipeline.export import quantize
from pipeline.export import parity as verify


def representative(datasets, count=100):
    def generate():
        for image, _ in datasets.calibration.take(count):
            yield [np.repeat(image.numpy()[None], 3, axis=-1)]
    return generate


@pytest.mark.parametrize("input_type,dtype,zero_point", [("uint8", np.uint8, 0),
                                                         ("int8", np.int8, -128)])
def test_int8_agrees_with_keras(tiny_classifier_of_each, tiny_data, tmp_path, input_type, dtype,
                                zero_point):
    tiny_classifier = tiny_classifier_of_each
    raw = quantize.convert_int8(with_rgb_front(tiny_classifier),
                                representative(tiny_data), input_type)
    path = tmp_path / "q.tflite"
    path.write_bytes(raw)
    interpreter = Interpreter(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == dtype and out["dtype"] == dtype
    scale, zp = inp["quantization"]
    assert scale == pytest.approx(1 / 255, rel=1e-3) and zp == zero_point
    images = np.concatenate([x.numpy() for x, _ in tiny_data.val])  # 500: int8 flips a few near-ties
    result = verify.verify_parity(str(path), tiny_classifier, images, "q", min_agreement=0.99)
    assert result["agreement"] >= 0.99 and result["input_dtype"] == input_type
    assert result["max_abs_diff"] < 0.1  # probabilities, dequantized
    details = [d for d in interpreter.get_tensor_details() if len(d["shape"]) == 4]
    # The first conv's kernel (named after its op: Conv2D in tf_keras, convolution in Keras 3)
    # is int8, and no 4-D tensor of the file is float.
    assert [d for d in details if "block1_conv1" in d["name"] and d["dtype"] == np.int8
            and list(d["shape"]) == [32, 3, 3, 1]]
    assert not [d["name"] for d in details if d["dtype"] == np.float32]


def _dim():  # calibration images in [0, 0.5], as a folder of low-contrast photos gives
    rng = np.random.default_rng(0)
    for _ in range(10):
        yield [rng.uniform(0, 0.5, (1, 28, 28, 3)).astype(np.float32)]


def test_dim_calibration_images_still_give_the_pixel_scale(tiny_classifier):
    raw = quantize.convert_int8(with_rgb_front(tiny_classifier), _dim, "uint8")
    scale, zero_point = quantize.check_input_quantization(raw, "uint8")
    assert scale == pytest.approx(1 / 255, rel=1e-3) and zero_point == 0


def test_a_file_whose_input_misses_the_pixel_scale_is_refused(tiny_classifier):
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(with_rgb_front(tiny_classifier))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _dim  # no black and white images added
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    with pytest.raises(quantize.QuantizeError, match="do not span"):
        quantize.check_input_quantization(converter.convert(), "uint8")


def test_unknown_input_type(tiny_classifier):
    with pytest.raises(quantize.QuantizeError, match="int8_input"):
        quantize.convert_int8(tiny_classifier, lambda: iter(()), "int16")


def channel_classifier():
    """8x8 RGB images -> which channel of the model's input is brightest (3 classes)."""
    import tf_keras
    inputs = tf_keras.Input((8, 8, 3))
    x = tf_keras.layers.GlobalAveragePooling2D()(inputs)
    dense = tf_keras.layers.Dense(3, activation="softmax")
    outputs = dense(x)
    dense.set_weights([np.eye(3, dtype=np.float32) * 4.0, np.zeros(3, np.float32)])
    return tf_keras.Model(inputs, outputs, name="channels")


def bright_pixels(count=200, seed=0):
    """uint8 R, G, B images spanning 0-255, one channel 120 brighter than the others (its class)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 136, (count, 8, 8, 3))
    pixels[np.arange(count), :, :, rng.integers(0, 3, count)] += 120
    return pixels.astype(np.uint8)


@pytest.mark.parametrize("name", ["symmetric", "imagenet_caffe", "imagenet_torch"])
def test_int8_takes_raw_pixels_whatever_the_preprocessing(name, tmp_path):
    import tensorflow as tf
    from pipeline.data import preprocess
    p = preprocess.from_settings(name)
    model, pixels = channel_classifier(), bright_pixels()
    images = p.from_pixels(pixels)  # the Keras model's input, in its channel order

    def calibration():
        for image in images[:100]:
            yield [image[None]]
    raw = quantize.convert_int8(with_rgb_front(model, p), calibration, "uint8", p)
    path = tmp_path / "q.tflite"
    path.write_bytes(raw)
    interpreter = Interpreter(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["quantization"][0] == pytest.approx(1 / 255, rel=1e-3)
    assert inp["quantization"][1] == 0
    names = {d["name"] for d in interpreter.get_tensor_details()}
    assert any("normalize" in n for n in names)  # the preprocessing runs in the graph
    interpreter.resize_tensor_input(inp["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], pixels)  # raw camera pixels, R, G, B
    interpreter.invoke()
    expected = np.argmax(model(images), -1)
    assert np.mean(np.argmax(interpreter.get_tensor(out["index"]), -1) == expected) >= 0.99
    result = verify.verify_parity(str(path), model, images, "q", preprocess=p)
    assert result["agreement"] >= 0.99
    # The float file, behind the same front, takes (pixel - mean) / std in R, G, B order.
    fp32 = tmp_path / "f.tflite"
    fp32.write_bytes(tf.lite.TFLiteConverter.from_keras_model(with_rgb_front(model, p)).convert())
    result = verify.verify_parity(str(fp32), model, images, "f", preprocess=p)
    assert result["max_rel_diff"] < 1e-5 and result["agreement"] == 1.0


def test_unit_keeps_the_graph_without_a_normalize_layer(tiny_classifier):
    from pipeline.data import preprocess
    from pipeline.export import rgb_front
    front = with_rgb_front(tiny_classifier)
    assert rgb_front.with_normalization(front, preprocess.UNIT) is front
    assert rgb_front.with_normalization(front, None) is front


def test_a_bgr_preprocessing_refuses_a_gray_model(tiny_classifier):
    from pipeline.data import preprocess
    from pipeline.export import rgb_front
    with pytest.raises(rgb_front.RgbFrontError, match="reorders R, G, B"):
        with_rgb_front(tiny_classifier, preprocess.IMAGENET_CAFFE)
