"""The variant registry and each variant exported end to end on a small model.

Each variant: conversion behind the RGB front, metadata, parity with its Keras
model on validation images, and its own check on the written file.
"""
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from pipeline.litert import accuracy as evaluate
from pipeline.export import metadata
from pipeline.export import parity as verify
from pipeline.export import sparse_check
from pipeline.export import sparse_finetune
from pipeline.export import variants as export
from pipeline.errors import PruningError, RegistryError

VARIANTS = ("baseline_fp32", "pruned_fp32", "pruned_int8", "pruned_2of4", "pruned_block_fc",
            "pruned_fp16", "pruned_dynamic_int8")


@pytest.fixture(scope="module")
def setup(tiny_data, make_tiny_data, tmp_path_factory):
    directory = tmp_path_factory.mktemp("export")
    labels = metadata.write_labels(str(directory / "labels.txt"), tiny_data.class_names)
    fresh = make_tiny_data()  # the sparse fine-tunes' batches: the same whatever ran before
    context = export.ExportContext(
        calibration=fresh.calibration, samples=100, train=fresh.train,
        steps_per_epoch=fresh.steps_per_epoch,
        # Enough steps to recover from the masks (4 at 1e-4 left the files at 45-50%).
        sparse=sparse_finetune.SparseRecipe(steps=30, lr=1e-3))
    images = np.concatenate([x.numpy() for x, _ in tiny_data.val])  # all 500: int8 flips a few near-ties
    return directory, labels, context, export.Checks(images)


def test_registry_holds_the_seven_variants():
    assert set(VARIANTS) <= set(export.variant_names())
    assert export.get_variant("pruned_2of4").reference == "pruned_fp32"
    with pytest.raises(RegistryError, match="already registered"):
        export.register_variant("pruned_fp32", source="pruned")(export.convert_fp32)
    with pytest.raises(RegistryError, match="choose one of: .*pruned_int8"):
        export.get_variant("pruned_int4")
    with pytest.raises(RegistryError, match="source must be one of"):
        export.register_variant("x", source="teacher")


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_is_exported_and_verified(name, setup, tiny_classifier, tiny_data):
    directory, labels, context, checks = setup
    path = str(directory / f"{name}.tflite")
    model, record = export.export_variant(export.get_variant(name), tiny_classifier, context,
                                          path, labels, metadata.ModelInfo(name), checks)
    (inp,) = Interpreter(model_path=path).get_input_details()
    integer = name == "pruned_int8"
    assert list(inp["shape"]) == [1, 28, 28, 3]
    assert inp["dtype"] == (np.uint8 if integer else np.float32)
    parity = record["parity"]
    assert parity["examples"] == 500
    if integer or name == "pruned_dynamic_int8":
        assert parity["agreement"] >= 0.99 and parity["criterion"] == "agreement"
        assert name == "pruned_int8" or parity["max_rel_diff"] > 1e-4  # int8 weights moved it
    elif name == "pruned_fp16":
        assert 1e-5 < parity["max_rel_diff"] <= export.FP16_RTOL and parity["criterion"] == "rtol"
    else:
        assert parity["max_rel_diff"] <= 1e-4 and parity["agreement"] == 1.0
    assert record["notes"][0].startswith({"pruned_fp16": "float16 weights",
                                          "pruned_dynamic_int8": "dynamic-range"}.get(name, ""))
    dtypes = {d["dtype"] for d in Interpreter(model_path=path).get_tensor_details()}
    assert (np.float16 in dtypes) == (name == "pruned_fp16")  # the weights, as stored
    assert (np.int8 in dtypes) == (name in ("pruned_int8", "pruned_dynamic_int8"))
    if name == "pruned_dynamic_int8":  # judged by agreement, so an impossible bar fails it
        with pytest.raises(verify.VerificationError, match="agrees with its Keras model on"):
            verify.verify_parity(path, model, checks.images, name, min_agreement=1.01,
                                 by_agreement=True)
    meta = metadata.read_metadata(path)
    assert meta["metadata"]["name"] == name
    assert meta["files"]["labels.txt"].splitlines() == list(tiny_data.class_names)
    sparse = name in ("pruned_2of4", "pruned_block_fc")
    assert (model is not tiny_classifier) == sparse  # sparse variants fine-tune a copy
    if name == "pruned_2of4":
        assert any("2:4 verified in the file" in n for n in record["notes"])
        assert any("block1_conv1: 1 input channel" in n for n in record["notes"])
        sparse_check.check_2of4(path)  # on the file as shipped, metadata included
    if name == "pruned_block_fc":
        assert any("1x4 block-sparse FULLY_CONNECTED verified" in n for n in record["notes"])
    accuracy = evaluate.tflite_accuracy(path, tiny_data.test)["accuracy"]
    assert accuracy > 0.5  # LiteRT on the test split, through the RGB front


def test_a_failed_parity_check_names_the_variant_and_leaves_no_file(setup, tiny_classifier):
    directory, labels, context, checks = setup

    def wrong(model, context):  # converts a different model than it claims
        import tf_keras
        other = tf_keras.models.clone_model(model)
        return export.convert_fp32(other, context)
    variant = export.Variant("broken", "pruned", wrong)
    path = directory / "broken.tflite"
    with pytest.raises(verify.VerificationError, match="variant 'broken'"):
        export.export_variant(variant, tiny_classifier, context, str(path), labels,
                              metadata.ModelInfo("broken"), checks)
    assert not path.exists()
    assert not [p for p in directory.iterdir() if ".tmp" in p.name]


def test_a_failed_file_check_names_the_variant(setup, tiny_classifier):
    directory, labels, context, checks = setup
    variant = export.Variant("dense_2of4", "pruned", export.convert_fp32,
                             check=export.get_variant("pruned_2of4").check)
    path = directory / "dense_2of4.tflite"
    with pytest.raises(sparse_check.SparsityError, match="variant 'dense_2of4': .*breaks 2:4"):
        export.export_variant(variant, tiny_classifier, context, str(path), labels,
                              metadata.ModelInfo("x"), checks)
    assert not path.exists()


def test_sparse_variants_need_training_data(tiny_classifier, setup):
    directory, labels, _, checks = setup
    with pytest.raises(PruningError, match="'pruned_2of4' fine-tunes and needs training data") as e:
        export.export_variant(export.get_variant("pruned_2of4"), tiny_classifier,
                              export.ExportContext(), str(directory / "x.tflite"), labels,
                              metadata.ModelInfo("x"), checks)
    assert e.value.argument == "train"


def test_sparse_notes_come_from_the_ineligible_layers_fields():
    import tf_keras
    inputs = tf_keras.Input((6,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(3, name="out")(inputs))
    context = export.ExportContext(train=object(), steps_per_epoch=1)
    prepared = export.get_variant("pruned_2of4").prepare(model, context)
    assert prepared.sparse_layers == ()
    assert prepared.left_dense == (sparse_finetune.Ineligible(
        "out", "6 input channel(s), not a multiple of 4", "prune with round_to=4", "round_to"),)
    assert prepared.notes[1:] == ("left dense (not eligible): out: 6 input channel(s), not a "
                                  "multiple of 4", "prune with round_to=4 to make out eligible")


def test_the_sparse_prepare_passes_the_context_cluster(monkeypatch, tiny_classifier):
    seen = {}

    def finetune(model, mode, recipe, train, steps_per_epoch, cluster=None, classifier=None):
        seen["cluster"] = cluster
        return sparse_finetune.SparseModel(model, mode, (), ())
    monkeypatch.setattr(sparse_finetune, "finetune_sparse", finetune)
    cluster = object()
    context = export.ExportContext(train=object(), steps_per_epoch=1, cluster=cluster)
    export.get_variant("pruned_block_fc").prepare(tiny_classifier, context)
    assert seen["cluster"] is cluster
