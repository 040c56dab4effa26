"""Iterative pruning: k prune-then-fine-tune steps compounding to the configured ratio."""
import json

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from configs import default
from pipeline.data import datasets as data
from pipeline.run import stages
from pipeline.run.results import ModelRecord, ModelResult
from pipeline.run.store import Store

L = tf_keras.layers


def small_cnn():
    tf_keras.utils.set_random_seed(0)
    x = inp = tf_keras.Input((8, 8, 1))
    for i, width in enumerate((16, 24)):
        x = L.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(32, activation="relu", name="fc")(x)
    return tf_keras.Model(inp, L.Dense(4, activation="softmax", name="out")(x))


def datasets():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 64)
    x = rng.normal(size=(64, 8, 8, 1)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    return data.Datasets(train=batches.repeat(), val=batches, test=batches,
                         calibration=batches.unbatch(), input_shape=(8, 8, 1),
                         class_names=("a", "b", "c", "d"),
                         sizes={"train": 64, "val": 64, "test": 64}, steps_per_epoch=2)


def loaded():
    return stages.Data(datasets(), "data-key")


def baseline(model, key="base-key"):
    return ModelResult(model, "baseline.keras", key, ModelRecord(0.0, 0, 0))


def run(c, base, store):
    return stages.prune_and_finetune(c.prune, c.finetune, base, loaded(), store, seed=c.seed)


def config(iterations):
    c = default.get_config("quick")
    c.finetune.iterations = iterations
    c.finetune.epochs = 1
    c.finetune.patience = 0
    c.prune.round_to = 1  # the 8x8 test CNN's layers are too narrow for steps of 16
    return c


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("iterative")
    model = small_cnn()
    base = baseline(model)
    store = Store(str(workdir))
    return workdir, model, run(config(2), base, store), store, base


def test_two_steps_reach_the_mac_target(two_steps):
    workdir, model, pruning, _, _ = two_steps
    tuned = pruning.tuned
    removed = 1 - pipeline.count_macs(tuned.model) / pipeline.count_macs(model)
    assert abs(removed - 0.5) <= 0.02
    final = tf_keras.models.load_model(str(workdir / "pruned.keras"), compile=False)
    assert pipeline.count_macs(final) == pipeline.count_macs(tuned.model)
    assert tuned.path == "pruned.keras"
    assert tuned.record.epochs == 2  # one per step, in all


def test_each_step_has_its_plan_and_compounding_ratio(two_steps):
    workdir, model, pruning, _, _ = two_steps
    steps = pruning.steps
    assert [s.step for s in steps] == [1, 2]
    for s in steps:
        plan = pipeline.PrunePlan.from_json((workdir / s.plan).read_text())
        assert s.plan == f"steps/plan_{s.step}.json"
        assert plan.settings["ratio"] == pytest.approx(s.ratio)
        # Each step removes about 1 - sqrt(0.5) = 29.3% of what the previous one left.
        assert abs(plan.removed["macs"] - (1 - 0.5 ** 0.5)) <= 0.03
        assert (workdir / f"steps/pruned_{s.step}.keras.stamp.json").exists()
        assert 0.0 <= s.accuracy <= 1.0
    assert steps[1].macs < steps[0].macs < pipeline.count_macs(model)


def test_composed_plan_replays_to_the_final_architecture(two_steps):
    workdir, model, pruning, _, _ = two_steps
    tuned = pruning.tuned
    plan = pipeline.PrunePlan.from_json((workdir / "plan.json").read_text())
    assert plan.settings["ratio"] == 0.5 and plan.settings["iterations"] == 2
    replayed = pipeline.apply_plan(model, plan)
    assert [l.output_shape for l in replayed.layers] == [l.output_shape for l in
                                                         tuned.model.layers]
    assert plan.macs_after == pipeline.count_macs(tuned.model)
    assert plan.removed["macs"] == pytest.approx(pruning.removed["macs"])
    assert pruning.plan.to_json() == plan.to_json()


def test_rerun_skips_every_step(two_steps, capsys):
    workdir, _, pruning, store, base = two_steps
    stamps = sorted(workdir.glob("**/*.stamp.json"))
    before = [p.stat().st_mtime_ns for p in stamps]
    capsys.readouterr()
    again = run(config(2), base, store)
    out = capsys.readouterr().out
    for tag in ("[prune 1/2] up to date", "[finetune 1/2] up to date",
                "[prune 2/2] up to date", "[finetune 2/2] up to date"):
        assert tag in out
    assert [p.stat().st_mtime_ns for p in stamps] == before
    assert again.tuned.key == pruning.tuned.key
    assert again.steps == pruning.steps  # the records read back from the stamps


def test_one_iteration_keeps_the_flat_layout(tmp_path):
    pruning = run(config(1), baseline(small_cnn()), Store(str(tmp_path)))
    assert (pruning.pruned.path, pruning.tuned.path) == ("pruned_initial.keras", "pruned.keras")
    assert pruning.steps == () and pruning.plan is pruning.pruned.plan
    assert json.loads((tmp_path / "plan.json").read_text())["settings"]["ratio"] == 0.5
    assert not (tmp_path / "steps").exists()


def test_narrow_model_prunes_at_a_finer_alignment_and_records_it(tmp_path, capsys):
    c = config(1)
    c.prune.round_to = 16  # the config's default: too coarse for 16- and 24-channel layers
    model = small_cnn()
    with pytest.raises(pipeline.TargetError, match="closest reachable"):
        pipeline.prune(model, 0.5, round_to=16)  # the library stays exact
    pruning = run(c, baseline(model), Store(str(tmp_path)))
    used = pruning.pruned.record.round_to["used"]
    assert pruning.pruned.record.round_to == {"asked": 16, "used": used} and used < 16
    assert abs(pruning.plan.removed["macs"] - 0.5) <= 0.02
    assert json.loads((tmp_path / "plan.json").read_text())["settings"]["round_to"] == used
    stamp = json.loads((tmp_path / "pruned_initial.keras.stamp.json").read_text())
    assert stamp["record"]["round_to"] == {"asked": 16, "used": used}
    assert f"round_to=16 cannot reach 50.0% of macs; pruning at round_to={used}" in (
        capsys.readouterr().out)


def test_baseline_reuses_the_model_the_preflight_loaded(tmp_path):
    path = str(tmp_path / "given.keras")
    small_cnn().save(path)
    loaded_model = tf_keras.models.load_model(path, compile=False)
    c = config(1)
    c.model.path = path
    made = stages.baseline(c.model, c.train, loaded(), Store(str(tmp_path / "run")), seed=0,
                           loaded=loaded_model)
    assert made.model is loaded_model
    assert made.record.source == path
