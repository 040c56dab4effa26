"""The export and evaluate stages per variant: a variant that fails or does not apply is
recorded with its reason, leaves no file (not even an earlier run's), and the others go on."""
import json
import os

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from configs import default
from pipeline.data import datasets as data
from pipeline.export import sparse_check
from pipeline.export import variants
from pipeline.run import stages
from pipeline.run.results import ModelRecord, ModelResult
from pipeline.run.store import Store

L = tf_keras.layers


def small_cnn(width=16):
    tf_keras.utils.set_random_seed(0)
    x = inp = tf_keras.Input((8, 8, 1))
    x = L.Conv2D(width, 3, padding="same", activation="relu", name="conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tf_keras.Model(inp, L.Dense(4, activation="softmax", name="out")(x))


def loaded():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 64)
    x = rng.uniform(size=(64, 8, 8, 1)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    return stages.Data(data.Datasets(
        train=batches.repeat(), val=batches, test=batches, calibration=batches.unbatch(),
        input_shape=(8, 8, 1), class_names=("a", "b", "c", "d"),
        sizes={"train": 64, "val": 64, "test": 64}, steps_per_epoch=2), "data-key")


def export_section(*names):
    section = default.get_config("quick").export
    section.variants = names
    section.sparse_steps = 2
    section.verify_examples = 16
    section.calibration_samples = 8
    return section


def sources(model):
    record = ModelRecord(0.5, 0, 0)
    return {"baseline": ModelResult(model, "baseline.keras", "b", record),
            "pruned": ModelResult(model, "pruned.keras", "p", record)}


def broken_check(path, prepared):
    del prepared
    raise sparse_check.SparsityError(f"{path} breaks the test's pattern | on purpose")


@pytest.fixture
def registry(monkeypatch):
    """A copy of the variant registry with ``broken``: an fp32 file whose check always fails."""
    monkeypatch.setattr(variants, "_VARIANTS", variants._VARIANTS.copy())
    variants.register_variant("broken", source="pruned", check=broken_check,
                              reference="pruned_fp32")(variants.convert_fp32)


def export(store, model, *names):
    return stages.export_variants(export_section(*names), sources(model), loaded(), store,
                                  model_name="m", data_name="d", seed=0)


def leave_stale(store, name):
    """What an earlier successful run with another key left of variant ``name``."""
    for artifact in (f"tflite/{name}.tflite", f"tflite/{name}.eval.json"):
        store.write_bytes(artifact, b"old")
        store.stamp(artifact, "an earlier run's key", {})


def test_a_failed_variant_is_recorded_and_the_others_are_made(tmp_path, registry, capsys):
    store = Store(str(tmp_path))
    leave_stale(store, "broken")
    made = export(store, small_cnn(), "pruned_fp32", "broken", "baseline_fp32")
    assert [(m.name, m.status) for m in made] == [
        ("pruned_fp32", "ok"), ("broken", "failed"), ("baseline_fp32", "ok")]
    failed = made[1]
    assert failed.record is None
    # One line, naming the file by its workdir path, not the check's temporary file.
    assert failed.reason == ("variant 'broken': tflite/broken.tflite breaks the test's pattern "
                             "| on purpose")
    assert "[export] broken: failed: variant 'broken'" in capsys.readouterr().out
    left = sorted(os.listdir(tmp_path / "tflite"))
    assert left == ["baseline_fp32.tflite", "baseline_fp32.tflite.stamp.json", "labels.txt",
                    "pruned_fp32.tflite", "pruned_fp32.tflite.stamp.json"]


def test_a_rerun_retries_the_failed_variant_and_reuses_the_rest(tmp_path, registry, capsys):
    store = Store(str(tmp_path))
    export(store, small_cnn(), "pruned_fp32", "broken")
    capsys.readouterr()
    again = export(store, small_cnn(), "pruned_fp32", "broken")
    out = capsys.readouterr().out
    assert "[export] up to date: tflite/pruned_fp32.tflite" in out
    assert "[export] broken: failed:" in out  # tried again, not taken from a stamp
    assert [m.status for m in again] == ["ok", "failed"]
    assert not (tmp_path / "tflite" / "broken.tflite.stamp.json").exists()


def test_a_sparse_variant_with_no_eligible_layer_is_not_applicable(tmp_path):
    # 3 filters: the classifier has 3 inputs and the conv 1 input channel, so no kernel can
    # hold 2:4 or 1x4 blocks.
    store = Store(str(tmp_path))
    leave_stale(store, "pruned_2of4")
    made = export(store, small_cnn(width=3), "pruned_fp32", "pruned_2of4", "pruned_block_fc")
    assert [m.status for m in made] == ["ok", "not_applicable", "not_applicable"]
    assert made[1].reason.startswith("no layer is eligible, so no file is written")
    assert "conv: 1 input channel(s), not a multiple of 4" in made[1].reason
    assert "out: 3 input channel(s), not a multiple of 4" in made[1].reason
    for name in ("pruned_2of4", "pruned_block_fc"):
        assert not [f for f in os.listdir(tmp_path / "tflite") if f.startswith(name)]


def test_evaluate_runs_only_the_made_variants_and_times_them_paired(tmp_path, registry):
    store = Store(str(tmp_path))
    made = export(store, small_cnn(), "pruned_fp32", "broken", "pruned_2of4")
    section = default.get_config("quick").evaluate
    evaluations = stages.evaluate(section, made, loaded(), store)
    assert list(evaluations) == ["pruned_fp32", "pruned_2of4"]
    paired = json.loads((tmp_path / "tflite" / "pruned_2of4.paired.json").read_text())
    assert paired["reference"] == "pruned_fp32" and paired["repeats"] == 7
    cell = paired["latency"]["1"]
    assert cell["speedup_min"] <= cell["speedup"] <= cell["speedup_max"]
    (latency,) = [n for n in evaluations["pruned_2of4"].notes if "thread(s)" in n]
    assert "pruned_fp32" in latency and "over 7 interleaved repeats" in latency
    assert not (tmp_path / "tflite" / "broken.eval.json").exists()


def test_a_full_disk_stops_the_run_and_keeps_the_earlier_file(tmp_path, registry):
    """Not a variant's failure: the error propagates and nothing of an earlier run is removed."""
    from pipeline.export import quantize

    def full(model, context):
        raise quantize.QuantizeError("full-integer conversion failed") from OSError(
            28, "No space left on device")

    variants.register_variant("full_disk", source="pruned")(full)
    store = Store(str(tmp_path))
    leave_stale(store, "full_disk")
    with pytest.raises(quantize.QuantizeError):
        export(store, small_cnn(), "full_disk")
    assert (tmp_path / "tflite" / "full_disk.tflite").read_bytes() == b"old"


def test_a_small_validation_split_is_topped_up_with_training_images():
    from pipeline.run.stages import export as export_stage
    rng = np.random.default_rng(1)
    val = rng.uniform(size=(8, 8, 8, 1)).astype(np.float32)
    train = rng.uniform(size=(64, 8, 8, 1)).astype(np.float32)
    labels = np.zeros(64, np.int64)
    datasets = data.Datasets(
        train=None, val=tf.data.Dataset.from_tensor_slices((val, labels[:8])).batch(4),
        test=None, calibration=tf.data.Dataset.from_tensor_slices((train, labels)),
        input_shape=(8, 8, 1), class_names=("a",), sizes={"train": 64, "val": 8, "test": 0},
        steps_per_epoch=1)
    images = export_stage._verify_images(datasets, 20)
    np.testing.assert_array_equal(images[:8], val)  # the validation images first
    np.testing.assert_array_equal(images[8:], train[:12])
    assert len(export_stage._verify_images(datasets, 5)) == 5
