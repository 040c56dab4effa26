"""pipeline.latency.refine: allocate, rebuild, measure, re-aim, for target="latency".

The measure-and-refine loop runs against a fake timer: a pruned model's
"measured" latency is its synthetic cost raised to the power 1.5 (relative
to the full model), so the table's prediction is biased the way real
layer-by-layer tables are and the loop has to re-aim. Every figure is then
deterministic. The one test that times real models on this CPU is slow.
"""
import os

import numpy as np
import pytest
import tf_keras

import pipeline
from latency_synthetic import chain, setup, synthetic, write_device_table
from pipeline.latency import measure as latency_measure
from pipeline.latency import refine
from pipeline.latency.refine import Round

L = tf_keras.layers


def synthetic_ms(layer, c_in, c_out):
    return 1e-3 * c_in * c_out


def model_cost(model) -> float:
    """The synthetic cost of a (pruned) model: what the synthetic table predicts for it."""
    return sum(1e-3 * l.input_shape[-1] * l.output_shape[-1] for l in model.layers
               if isinstance(l, (L.Conv2D, L.Dense)))


class FakeTimer:
    """Stands in for ``measure.ModelTimer``: measured = full * (cost / full cost) ** power."""

    instances = []

    def __init__(self, model, timing=latency_measure.Timing(), power=1.5):
        self.full, self.power = model_cost(model), power
        self.compared, self.closed = [], False
        FakeTimer.instances.append(self)

    def full_ms(self):
        return self.full

    def compare(self, pruned):
        ms = self.full * (model_cost(pruned) / self.full) ** self.power
        self.compared.append(ms)
        return latency_measure.Comparison(self.full, ms, ms / self.full)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_timing(monkeypatch):
    """Host timing replaced: a synthetic table instead of measured points, FakeTimer for models."""
    FakeTimer.instances = []
    tables = []

    def table_for(analysis, layers, config):
        tables.append(synthetic(layers, synthetic_ms))
        return tables[-1]
    monkeypatch.setattr(refine, "table_for", table_for)
    monkeypatch.setattr(latency_measure, "ModelTimer", FakeTimer)
    return FakeTimer


@pytest.mark.parametrize("ratio, rounds", [(0.3, 3), (0.5, 3), (0.7, 4)])
def test_the_loop_re_aims_until_the_measured_budget_is_met(fake_timing, ratio, rounds):
    model = chain((48, 48, 48))
    result = pipeline.prune(model, ratio, target="latency")
    report = result.plan.report
    (timer,) = fake_timing.instances
    assert timer.closed and len(timer.compared) == len(report["rounds"]) == rounds
    first, last = report["rounds"][0], report["rounds"][-1]
    assert first["predicted_ratio"] == pytest.approx(1 - ratio, abs=0.02)  # aims at the goal
    assert abs(first["measured_ratio"] / (1 - ratio) - 1) > 0.05  # ... and misses it
    assert report["measured"] and report["device"] == "synthetic"
    assert report["full_ms"] == pytest.approx(timer.full)
    assert report["budget_ms"] == pytest.approx((1 - ratio) * timer.full)
    assert report["measured_ms"] == pytest.approx(timer.compared[-1]) == pytest.approx(
        last["measured_ms"])
    assert report["error"] <= 0.05
    assert abs(report["measured_ms"] / report["budget_ms"] - 1) <= 0.05 + 1e-9
    assert result.plan.removed["latency"] == pytest.approx(1 - last["measured_ratio"])
    assert model_cost(result.model) == pytest.approx(
        timer.full * last["measured_ratio"] ** (1 / 1.5))  # the model kept is the one timed


def test_a_prediction_that_lands_needs_one_round(fake_timing, monkeypatch):
    monkeypatch.setattr(latency_measure, "ModelTimer",
                        lambda model, timing: FakeTimer(model, timing, power=1.0))
    report = pipeline.prune(chain((48, 48, 48)), 0.5, target="latency").plan.report
    (only,) = report["rounds"]
    assert only["measured_ratio"] == pytest.approx(only["predicted_ratio"])
    assert report["error"] == pytest.approx(abs(only["measured_ratio"] - 0.5) / 0.5)


def test_an_unreachable_budget_says_what_was_tried(fake_timing, monkeypatch):
    """A model that never gets faster: rounds until the allocation stops changing, then fail."""
    class NoFaster(FakeTimer):
        def compare(self, pruned):
            self.compared.append(self.full)
            return latency_measure.Comparison(self.full, self.full, 1.0)

    monkeypatch.setattr(latency_measure, "ModelTimer", NoFaster)
    # Each round halves its aim (goal / measured = 0.5); the floor keeps 5% of the cost.
    with pytest.raises(pipeline.TargetError, match=(
            r"cannot remove 50.0% of the latency within 5%: the closest of 3 round\(s\) "
            r"\(predicted->measured share kept: 51%->100%, 25%->100%, 13%->100%\) kept 100.0% "
            r"of it \(budget 50.0%\); the narrowest model the table allows keeps about 5%.*"
            r"max_iterations")):
        pipeline.prune(chain((48, 48, 48)), 0.5, target="latency",
                       latency=pipeline.LatencyConfig(max_iterations=3))
    (timer,) = NoFaster.instances
    assert timer.closed and len(timer.compared) == 3


def test_aim_starts_at_the_goal_then_interpolates_or_rescales():
    def measured(predicted, got):
        return Round(0.0, 0.0, predicted, 1.0, 1.0, got)

    assert refine._aim([], 0.5) == 0.5
    # one round below the goal: rescale its prediction by goal / measured
    assert refine._aim([measured(0.5, 0.4)], 0.5) == pytest.approx(0.5 * 0.5 / 0.4)
    # rounds on both sides: linear between the closest two
    rounds = [measured(0.5, 0.4), measured(0.7, 0.6), measured(0.9, 0.8)]
    assert refine._aim(rounds, 0.5) == pytest.approx(0.6)


def test_report_to_dict_uses_the_chosen_round():
    rounds = (Round(1.0, 1.1, 0.55, 1.2, 2.0, 0.6), Round(1.0, 0.95, 0.475, 1.02, 2.0, 0.51))
    report = refine.LatencyReport("phone", 0.5, 0.05, 2.0, rounds, 1, "log")
    body = report.to_dict()
    assert body["measured_ms"] == 1.02 and body["full_ms"] == 2.0 and body["budget_ms"] == 1.0
    assert body["error"] == pytest.approx(0.02) and body["measured"] and body["utility"] == "log"
    assert len(body["rounds"]) == 2 and body["rounds"][0]["predicted_ms"] == 1.1


def test_device_table_gives_one_predicted_round(tmp_path):
    model = chain((32, 32, 32))
    _, _, _, layers = setup(model)
    table = synthetic(layers, lambda l, i, o: 1e-3 * i * o + 1e-3, model_ms=4.0)
    path = write_device_table(table, tmp_path / "phone.json", "pixel-test")
    result = pipeline.prune(model, 0.4, target="latency", latency=pipeline.LatencyConfig(table=path))
    report = result.plan.report
    assert report["device"] == "pixel-test" and not report["measured"]
    assert report["utility"] == "log"
    assert len(report["rounds"]) == 1 and report["measured_ms"] is None
    assert abs(report["predicted_ms"] / report["budget_ms"] - 1) <= 0.05
    assert result.model.count_params() < model.count_params()
    assert "latency" in result.plan.removed


def test_latency_target_rejects_layer_scope_and_stray_settings():
    model = chain((16,))
    with pytest.raises(pipeline.TargetError, match="scope='layer'"):
        pipeline.prune(model, 0.5, target="latency", scope="layer")
    with pytest.raises(pipeline.TargetError, match="need target='latency'"):
        pipeline.prune(model, 0.5, target="macs", round_to=8, latency=pipeline.LatencyConfig())
    with pytest.raises(pipeline.TargetError, match="tolerance"):
        pipeline.LatencyConfig(tolerance=0)


@pytest.mark.slow
def test_budget_is_met_as_measured(tmp_path):
    """The pruned model's own measured latency lands within 5% of the budget (real LiteRT).

    Timing on a shared machine is noisy, so one retry is allowed (the table
    is cached by then); prune() itself raises TargetError when no round lands.
    """
    model = chain((64, 64, 128, 128), size=32, channels=3, kernel=3, name="small")
    config = pipeline.LatencyConfig(cache_dir=str(tmp_path))
    for attempt in range(2):
        try:
            result = pipeline.prune(model, 0.5, target="latency", latency=config)
            break
        except pipeline.TargetError:
            if attempt == 1:
                raise
    report = result.plan.report
    assert report["measured"]
    assert abs(report["measured_ms"] / report["budget_ms"] - 1) <= 0.05 + 1e-9
    assert report["error"] <= 0.05
    assert report["budget_ms"] == pytest.approx(0.5 * report["full_ms"])
    assert 0.45 <= result.plan.removed["latency"] <= 0.55
    assert os.listdir(tmp_path)  # the table was cached


# ----- through the run layer: config -> PruneConfig -> table -> plan.json --------------------

def small_cnn():
    """The run tests' CNN (tests/run/stages_test.py): 8x8x1 -> 16, 24 convs -> Dense(32) -> 4."""
    tf_keras.utils.set_random_seed(0)
    x = inputs = tf_keras.Input((8, 8, 1))
    for i, width in enumerate((16, 24)):
        x = L.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(32, activation="relu", name="fc")(x)
    return tf_keras.Model(inputs, L.Dense(4, activation="softmax", name="out")(x))


def random_data():
    import tensorflow as tf
    from pipeline.data import datasets as data
    from pipeline.run import stages
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 4, 64))).batch(32)
    return stages.Data(data.Datasets(
        train=batches.repeat(), val=batches, test=batches, calibration=batches.unbatch(),
        input_shape=(8, 8, 1), class_names=("a", "b", "c", "d"),
        sizes={"train": 64, "val": 64, "test": 64}, steps_per_epoch=2), "data-key")


def quick_config():
    from configs import default
    return default.get_config("quick")


def test_pipeline_prunes_to_a_device_table(tmp_path):
    """prune.target=latency through the stages: config -> table -> plan.json -> pruned model."""
    from pipeline.run import stages
    from pipeline.run.results import ModelRecord, ModelResult
    from pipeline.run.store import Store
    model = small_cnn()
    _, _, _, layers = setup(model)
    table = synthetic(layers, synthetic_ms,
                      model_ms=1.2 * sum(synthetic_ms(l, *l.full) for l in layers))
    path = write_device_table(table, tmp_path / "phone.json", "phone")
    c = quick_config()
    c.finetune.iterations, c.finetune.epochs, c.finetune.patience = 1, 1, 0
    c.prune.round_to = 1  # the 8x8 test CNN's layers are too narrow for steps of 16
    c.prune.target, c.prune.ratio, c.prune.latency.table = "latency", 0.4, path
    base = ModelResult(model, "baseline.keras", "base-key", ModelRecord(0.0, 0, 0))
    pruning = stages.prune_and_finetune(c.prune, c.finetune, base, random_data(),
                                        Store(str(tmp_path / "work")), seed=c.seed)
    plan = pipeline.PrunePlan.from_json((tmp_path / "work" / "plan.json").read_text())
    report = plan.report
    assert plan.settings["target"] == "latency"
    assert report["device"] == "phone" and report["utility"] == "log"
    assert abs(report["predicted_ms"] / report["budget_ms"] - 1) <= 0.05
    assert pruning.tuned.model.count_params() < model.count_params()
    assert [l.output_shape for l in pipeline.apply_plan(model, plan).layers] == [
        l.output_shape for l in pruning.tuned.model.layers]


def test_config_selects_latency_target_with_workdir_cache(tmp_path):
    from pipeline.run import config_check, prune_settings
    from pipeline.run.store import Store
    config = quick_config()
    config.prune.target = "latency"
    config_check.check(config)

    def latency():
        cache = Store(str(tmp_path)).path("latency_tables")
        return prune_settings.prune_config(config.prune, config.seed, cache).latency
    assert latency().cache_dir == str(tmp_path / "latency_tables")
    assert latency().tolerance == 0.05 and latency().table == "" and latency().utility == "log"
    config.prune.latency.utility = "sum"
    assert latency().utility == "sum"
    config.prune.latency.utility = "max"
    with pytest.raises(config_check.ConfigError, match="utility='max' is not one of: sum, log"):
        config_check.check(config)
    config.prune.latency.utility = "log"
    config.finetune.iterations = 2
    with pytest.raises(config_check.ConfigError, match="iterations"):
        config_check.check(config)
    config.finetune.iterations = 1
    config.prune.latency.table = str(tmp_path / "missing.json")
    with pytest.raises(config_check.ConfigError, match="latency.table"):
        config_check.check(config)
    config.prune.target = "macs"
    # round_to=auto (the default) reads a given device table for its speed steps...
    assert latency().table == str(tmp_path / "missing.json") and latency().cache_dir == ""
    config.prune.round_to = 16
    assert latency() is None  # ...an integer round_to needs none


def test_a_keras3_model_is_timed_and_pruned_in_keras3(tmp_path):
    """Real host timing (LiteRT) of Keras 3 one-layer and whole models: the table, the
    measured rounds and the result are all Keras 3's."""
    import keras
    from pipeline import keras_api
    model = chain((32, 32), size=16, channels=3, kernel=3, name="k3", K=keras)
    config = pipeline.LatencyConfig(cache_dir=str(tmp_path), tolerance=0.5, max_iterations=1)
    result = pipeline.prune(model, 0.3, target="latency", latency=config)
    assert keras_api.is_keras3(result.model)
    report = result.plan.report
    assert report["measured"] and len(report["rounds"]) == 1 and report["full_ms"] > 0
    assert pipeline.count_macs(result.model) < pipeline.count_macs(model)
