"""The TFLite metadata (written and read back with MediaPipe's writers) and labels.txt."""
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from pipeline.export import metadata
from pipeline.export import quantize
from pipeline.export.rgb_front import with_rgb_front

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")


def fp32_bytes(model):
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    return metadata.write_labels(str(tmp_path_factory.mktemp("labels") / "labels.txt"), CLASSES)


def test_float_metadata_round_trip(tiny_classifier_of_each, labels, tmp_path):
    tiny_classifier = tiny_classifier_of_each
    info = metadata.ModelInfo("vgg_test", "A test classifier.", "7", "me", "MIT")
    path = tmp_path / "m.tflite"
    path.write_bytes(metadata.add_metadata(fp32_bytes(with_rgb_front(tiny_classifier)),
                                           labels, info))
    read = metadata.read_metadata(str(path))
    meta = read["metadata"]
    assert (meta["name"], meta["description"], meta["version"], meta["author"],
            meta["license"]) == ("vgg_test", "A test classifier.", "7", "me", "MIT")
    assert meta["min_parser_version"] == "1.0.0"  # pipeline.export.mediapipe_metadata
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


def test_uint8_metadata_uses_mean_0_std_1(tiny_classifier_of_each, tiny_data, labels, tmp_path):
    tiny_classifier = tiny_classifier_of_each
    front = with_rgb_front(tiny_classifier)

    def representative():
        for image, _ in tiny_data.calibration.take(50):
            yield [np.repeat(image.numpy()[None], 3, axis=-1)]
    raw = quantize.convert_int8(front, representative, "uint8")
    path = tmp_path / "q.tflite"
    path.write_bytes(metadata.add_metadata(raw, labels, metadata.ModelInfo("q")))
    meta = metadata.read_metadata(str(path))["metadata"]
    (unit,) = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"]
    assert unit["options"] == {"mean": [0.0], "std": [1.0]}
    (detail,) = Interpreter(model_path=str(path)).get_input_details()
    assert list(detail["shape"]) == [1, 28, 28, 3] and detail["dtype"] == np.uint8


def test_metadata_refuses_a_gray_input(tiny_classifier, labels):
    with pytest.raises(metadata.MetadataError, match="not 1xHxWx3"):
        metadata.add_metadata(fp32_bytes(tiny_classifier), labels, metadata.ModelInfo("gray"))


def test_a_file_without_metadata_is_refused(tiny_classifier, tmp_path):
    path = tmp_path / "bare.tflite"
    path.write_bytes(fp32_bytes(with_rgb_front(tiny_classifier)))
    with pytest.raises(metadata.MetadataError, match="carries no TFLite metadata"):
        metadata.read_metadata(str(path))


def test_labels_file(tmp_path):
    path = metadata.write_labels(str(tmp_path / "labels.txt"), ["a", "b"])
    assert open(path).read() == "a\nb\n"
    with pytest.raises(metadata.MetadataError) as error:
        metadata.write_labels(str(tmp_path / "bad.txt"), ["a\nb"])
    assert error.value.argument == "class_names"


@pytest.mark.parametrize("name, stored_mean, stored_std", [
    ("symmetric", [127.5], [127.5]),
    ("imagenet_caffe", [123.68, 116.779, 103.939], [1.0, 1.0, 1.0]),  # R, G, B order
    ("imagenet_torch", [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]),
])
def test_float_metadata_carries_the_preprocessing(K, name, stored_mean, stored_std, tmp_path):
    from pipeline.data import preprocess
    p = preprocess.from_settings(name)
    inputs = K.Input((8, 8, 3))
    model = K.Model(inputs, K.layers.Dense(3, activation="softmax")(
        K.layers.GlobalAveragePooling2D()(inputs)))
    labels = metadata.write_labels(str(tmp_path / "labels.txt"), ["r", "g", "b"])
    path = tmp_path / "m.tflite"
    path.write_bytes(metadata.add_metadata(fp32_bytes(with_rgb_front(model, p)), labels,
                                           metadata.ModelInfo(name), p))
    meta = metadata.read_metadata(str(path))["metadata"]
    (unit,) = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"]
    np.testing.assert_allclose(unit["options"]["mean"], stored_mean, rtol=1e-6)
    np.testing.assert_allclose(unit["options"]["std"], stored_std, rtol=1e-6)
    mean, std = metadata.read_normalization(str(path))
    pixels = np.array([10.0, 20.0, 30.0], np.float32)  # R, G, B
    np.testing.assert_allclose((pixels - mean) / std,
                               p.to_rgb_order(p.from_pixels(pixels)), rtol=1e-5)


def test_uint8_metadata_ignores_the_preprocessing(tiny_classifier, tiny_data, labels, tmp_path):
    """An integer input takes raw pixels whatever the model's preprocessing: mean 0, std 1."""
    from pipeline.data import preprocess
    front = with_rgb_front(tiny_classifier)

    def representative():
        for image, _ in tiny_data.calibration.take(20):
            yield [np.repeat(image.numpy()[None], 3, axis=-1)]
    raw = quantize.convert_int8(front, representative, "uint8")
    path = tmp_path / "q.tflite"
    path.write_bytes(metadata.add_metadata(raw, labels, metadata.ModelInfo("q"),
                                           preprocess.SYMMETRIC))
    mean, std = metadata.read_normalization(str(path))
    np.testing.assert_array_equal(mean, [0.0] * 3)
    np.testing.assert_array_equal(std, [1.0] * 3)
