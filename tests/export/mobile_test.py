"""The RGB front, the TFLite metadata (read back with MetadataDisplayer) and labels.txt."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from ai_edge_litert.interpreter import Interpreter

from pipeline.export import mobile
from pipeline.export import quantize

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")


def fp32_bytes(model):
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    return mobile.write_labels(str(tmp_path_factory.mktemp("labels") / "labels.txt"), CLASSES)


def test_rgb_front_on_a_gray_model_gives_the_same_outputs(tiny_classifier, tiny_data):
    images = next(iter(tiny_data.val))[0].numpy()
    front = mobile.with_rgb_front(tiny_classifier)
    assert front.input_shape == (1, 28, 28, 3)
    got = np.concatenate([front(mobile.to_rgb(images[i:i + 1])) for i in range(8)])
    np.testing.assert_allclose(got, tiny_classifier(images[:8]), rtol=0, atol=1e-6)


def test_rgb_front_maps_colour_to_bt601_gray():
    inputs = tf_keras.Input((4, 4, 1))
    identity = tf_keras.Model(inputs, inputs)
    pixel = np.array([0.2, 0.6, 1.0], np.float32)
    out = mobile.with_rgb_front(identity)(np.broadcast_to(pixel, (1, 4, 4, 3)))
    expected = tf.image.rgb_to_grayscale(pixel[None, None, None]).numpy().item()
    assert float(out[0, 0, 0, 0]) == pytest.approx(expected, rel=2e-4)


def test_rgb_front_rejects_other_channel_counts():
    inputs = tf_keras.Input((4, 4, 2))
    with pytest.raises(mobile.MobileError, match="2-channel"):
        mobile.with_rgb_front(tf_keras.Model(inputs, inputs))


def test_float_metadata_round_trip(tiny_classifier, labels, tmp_path):
    info = mobile.ModelInfo("vgg_test", "A test classifier.", "7", "me", "MIT")
    path = tmp_path / "m.tflite"
    path.write_bytes(mobile.add_metadata(fp32_bytes(mobile.with_rgb_front(tiny_classifier)),
                                         labels, info))
    read = mobile.read_metadata(str(path))
    meta = read["metadata"]
    assert (meta["name"], meta["description"], meta["version"], meta["author"],
            meta["license"]) == ("vgg_test", "A test classifier.", "7", "me", "MIT")
    (tensor,) = meta["subgraph_metadata"][0]["input_tensor_metadata"]
    (unit,) = tensor["process_units"]
    assert unit["options_type"] == "NormalizationOptions"
    assert unit["options"] == {"mean": [0.0], "std": [255.0]}  # [0, 255] pixels -> [0, 1]
    assert tensor["content"]["content_properties"]["color_space"] == "RGB"
    (output,) = meta["subgraph_metadata"][0]["output_tensor_metadata"]
    (label_file,) = output["associated_files"]
    assert label_file == {"name": "labels.txt", "type": "TENSOR_AXIS_LABELS",
                          "description": label_file["description"]}
    assert read["files"]["labels.txt"].splitlines() == list(CLASSES)
    (detail,) = Interpreter(model_path=str(path)).get_input_details()
    assert list(detail["shape"]) == [1, 28, 28, 3] and detail["dtype"] == np.float32


def test_uint8_metadata_uses_mean_0_std_1(tiny_classifier, tiny_data, labels, tmp_path):
    front = mobile.with_rgb_front(tiny_classifier)

    def representative():
        for image, _ in tiny_data.calibration.take(50):
            yield [np.repeat(image.numpy()[None], 3, axis=-1)]
    raw = quantize.convert_int8(front, representative, "uint8")
    path = tmp_path / "q.tflite"
    path.write_bytes(mobile.add_metadata(raw, labels, mobile.ModelInfo("q")))
    meta = mobile.read_metadata(str(path))["metadata"]
    (unit,) = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"]
    assert unit["options"] == {"mean": [0.0], "std": [1.0]}
    (detail,) = Interpreter(model_path=str(path)).get_input_details()
    assert list(detail["shape"]) == [1, 28, 28, 3] and detail["dtype"] == np.uint8


def test_metadata_refuses_a_gray_input(tiny_classifier, labels):
    with pytest.raises(mobile.MobileError, match="not 1xHxWx3"):
        mobile.add_metadata(fp32_bytes(tiny_classifier), labels, mobile.ModelInfo("gray"))


def test_labels_file(tmp_path):
    path = mobile.write_labels(str(tmp_path / "labels.txt"), ["a", "b"])
    assert open(path).read() == "a\nb\n"
    with pytest.raises(mobile.MobileError):
        mobile.write_labels(str(tmp_path / "bad.txt"), ["a\nb"])
