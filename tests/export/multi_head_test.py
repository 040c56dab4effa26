"""A multi-head model through the export: every output named, verified, labelled and read.

Built and trained in each Keras. The model's two heads have the same width (4
classes, a 4-value box) and the box comes first, so nothing that pairs outputs
by shape or position can pass.
"""
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from pipeline.errors import PruningError
from pipeline.export import metadata, parity, rgb_front, sparse_finetune, variants
from pipeline.litert import accuracy, mediapipe_client, tensors

CLASSES = ["a", "b", "c", "d"]


def two_heads(K):
    K.utils.set_random_seed(0)
    L = K.layers
    inputs = K.Input((16, 16, 3))
    x = L.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(16, activation="relu", name="fc")(x)
    return K.Model(inputs, [L.Dense(4, name="box")(x),
                            L.Dense(4, activation="softmax", name="cls")(x)])


@pytest.fixture(scope="module")
def trained(K):
    """The model (in each Keras) after a few steps on images whose class is their brightest
    channel (+1)."""
    model = two_heads(K)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 16, 16, 3)).astype(np.float32)
    y = (x.mean((1, 2)).argmax(-1) + 1) % 4
    model.compile("adam", ["mse", "sparse_categorical_crossentropy"])
    model.fit(x, [np.zeros((64, 4)), y], epochs=30, batch_size=16, verbose=0)
    return model, x, y


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """``{variant: (path, record)}`` of the float and integer variants, with metadata."""
    model, x, y = trained
    root = tmp_path_factory.mktemp("multi_head")
    labels = metadata.write_labels(str(root / "labels.txt"), CLASSES)
    context = variants.ExportContext(calibration=tf.data.Dataset.from_tensor_slices((x, y)),
                                     samples=64, classifier="cls")
    made = {}
    for name in ("pruned_fp32", "pruned_int8"):
        path = str(root / f"{name}.tflite")
        _, record = variants.export_variant(variants.get_variant(name), model, context, path,
                                            labels, metadata.ModelInfo(name=name),
                                            variants.Checks(x))
        made[name] = (path, record)
    return made


def test_the_file_names_each_head_after_its_keras_output(trained, exported):
    model, _, _ = trained
    assert rgb_front.with_rgb_front(model).output_names == ["box", "cls"]
    interpreter = Interpreter(model_path=exported["pruned_fp32"][0])
    assert sorted(tensors.output_names(interpreter).values()) == ["box", "cls"]
    assert tensors.output_detail(interpreter, "cls")["shape"].tolist() == [1, 4]
    with pytest.raises(PruningError, match=r"has 2 outputs \(its outputs: .*cls"):
        tensors.output_detail(interpreter)


@pytest.mark.parametrize("name", ["pruned_fp32", "pruned_int8"])
def test_every_head_is_verified_on_its_own_scale_and_paired_by_name(name, exported):
    path, record = exported[name]
    checked = record["parity"]
    assert checked["classifier_output"] == "cls" and checked["agreement"] >= 0.99
    assert sorted(checked["outputs"]) == ["box", "cls"]
    # int8: the box head, trained towards 0, spans a few hundredths: 0.12 of it measured.
    bound = 1e-4 if name == "pruned_fp32" else 0.2
    assert max(checked["outputs"].values()) < bound, checked
    assert "each output relative to its own scale" in record["notes"][-1]


@pytest.mark.parametrize("name", ["pruned_fp32", "pruned_int8"])
def test_litert_accuracy_reads_the_classifier_by_name(name, trained, exported):
    model, x, y = trained
    path, _ = exported[name]
    keras = float(np.mean(np.argmax(model(x)[1], -1) == y))
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    assert accuracy.tflite_accuracy(path, batches, output="cls")["accuracy"] == pytest.approx(
        keras, abs=1 / 64 + 1e-9)
    with pytest.raises(PruningError, match="no output called 'box2'"):
        accuracy.tflite_accuracy(path, batches, output="box2")


def test_the_metadata_labels_the_classifier_and_names_the_other_head(exported):
    path, _ = exported["pruned_int8"]
    read = metadata.read_metadata(path)
    outputs = read["metadata"]["subgraph_metadata"][0]["output_tensor_metadata"]
    interpreter = Interpreter(model_path=path)
    order = [tensors.output_names(interpreter)[int(d["index"])]
             for d in interpreter.get_output_details()]
    assert [o["name"] for o in outputs] == order  # one entry per output, in the file's order
    by_name = {o["name"]: o for o in outputs}
    assert [f["type"] for f in by_name["cls"]["associated_files"]] == ["TENSOR_AXIS_LABELS"]
    assert "associated_files" not in by_name["box"] and "no labels" in by_name["box"][
        "description"]
    assert read["files"]["labels.txt"] == "a\nb\nc\nd\n"


def test_metadata_refuses_a_multi_head_file_without_its_classifier(exported, tmp_path):
    with open(exported["pruned_fp32"][0], "rb") as f:
        raw = f.read()
    labels = metadata.write_labels(str(tmp_path / "labels.txt"), CLASSES)
    with pytest.raises(metadata.MetadataError, match="none is the classifier ''"):
        metadata.add_metadata(raw, labels, metadata.ModelInfo(name="m"))


def test_mediapipe_loads_it_and_returns_the_classifier_head_by_name(trained, exported):
    model, x, _ = trained
    path, _ = exported["pruned_int8"]
    pixels = np.round(x[:8] * 255).astype(np.uint8)
    got = mediapipe_client.classify(path, pixels, head="cls")
    keras = np.argmax(model(pixels / 255.0)[1], -1)
    assert np.mean([index for index, _ in got] == keras) >= 7 / 8
    assert {label for _, label in got} <= set(CLASSES)
    with pytest.raises(PruningError, match="no output called 'x'"):
        mediapipe_client.classify(path, pixels[:1], head="x")


def test_the_sparse_fine_tune_trains_the_classifier_and_holds_the_other_head(trained):
    model, x, y = trained
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    tuned = sparse_finetune.finetune_sparse(model, "2of4", sparse_finetune.SparseRecipe(steps=8),
                                            batches, 4, classifier="cls")
    assert tuned.model.output_names == ["box", "cls"] and "fc" in tuned.pruned
    fc = tuned.model.get_layer("fc").get_weights()[0]  # (8 inputs, 16 outputs): 2 of each 4
    assert (np.count_nonzero(fc.T.reshape(16, 2, 4), axis=-1) <= 2).all()
    box_before, box_after = model(x)[0], tuned.model(x)[0]
    assert float(np.mean((np.asarray(box_after) - np.asarray(box_before)) ** 2)) < 0.05


def _linear_classifier(K, outlier: float):
    """Softmax of 5x the first 3 of 4 features; feature 3 (always 0) weighs ``outlier``."""
    inputs = K.Input((4,))
    dense = K.layers.Dense(3, activation="softmax", name="cls")
    model = K.Model(inputs, dense(inputs))
    kernel = np.zeros((4, 3), np.float32)
    kernel[:3] = 5 * np.eye(3)
    kernel[3] = outlier  # makes every int8 weight step outlier / 127
    dense.set_weights([kernel, np.zeros(3, np.float32)])
    return model


def test_answers_within_weight_rounding_noise_are_diagnosed(K):
    x = np.random.default_rng(0).uniform(0, 1, (256, 4)).astype(np.float32)
    x[:, 3] = 0
    assert parity.rounding_agreement(_linear_classifier(K, 0.0), x) >= 0.97
    assert parity.rounding_agreement(_linear_classifier(K, 1000.0), x) < 0.9
