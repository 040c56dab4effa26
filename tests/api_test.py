"""The public contract of pipeline.prune / plan_pruning / apply_plan and the plan."""
import json

import numpy as np
import pytest
import tensorflow as tf

import pipeline


def small_cnn(K, widths=(16, 24, 32), dense=20, input_shape=(16, 16, 3)):
    L = K.layers
    x = inp = K.Input(input_shape)
    for i, w in enumerate(widths):
        x = L.Conv2D(w, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        if i < 2:
            x = L.MaxPooling2D(2, name=f"pool{i}")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(dense, activation="relu", name="fc")(x)
    return K.Model(inp, L.Dense(10, name="logits")(x), name="small_cnn")


@pytest.fixture(scope="module")
def model(K):
    K.utils.set_random_seed(0)
    return small_cnn(K)


def test_macs_target_lands_within_two_points(model):
    for ratio in (0.25, 0.5, 0.75):
        result = pipeline.prune(model, ratio, target="macs")
        removed = 1 - pipeline.count_macs(result.model) / pipeline.count_macs(model)
        assert abs(removed - ratio) <= 0.02
        assert result.plan.removed["macs"] == pytest.approx(removed, abs=1e-9)


def test_filters_target_counts_each_group_once(model):
    result = pipeline.prune(model, 0.5, target="filters", scope="layer")
    plan = result.plan
    total = sum(g.size for g in plan.groups)
    removed = sum(g.size - len(g.keep) for g in plan.groups)
    assert removed / total == pytest.approx(0.5, abs=0.02)
    for g in plan.groups:  # layer scope: the same fraction everywhere
        assert len(g.keep) == g.size - g.size // 2


def test_global_and_layer_scopes_differ_but_both_hit_target(model):
    a = pipeline.prune(model, 0.5, scope="global").plan
    b = pipeline.prune(model, 0.5, scope="layer").plan
    assert a.kept().keys() == b.kept().keys()
    assert any(len(a.kept()[k]) != len(b.kept()[k]) for k in a.kept())
    assert abs(a.removed["macs"] - 0.5) <= 0.02 and abs(b.removed["macs"] - 0.5) <= 0.02


def test_round_to_keeps_multiples(K):
    model = small_cnn(K, widths=(32, 48, 64), dense=40)
    result = pipeline.prune(model, 0.4, round_to=8)
    for layer in result.model.layers:
        if isinstance(layer, K.layers.Conv2D):
            assert layer.filters % 8 == 0
    assert result.model.get_layer("fc").units % 8 == 0


def test_min_filters_is_respected_and_unreachable_target_explains(model, K):
    result = pipeline.prune(model, 0.6, target="filters", min_filters=6)
    for layer in result.model.layers:
        if isinstance(layer, (K.layers.Conv2D, K.layers.Dense)):
            assert (getattr(layer, "filters", None) or layer.units) >= 6
    with pytest.raises(pipeline.TargetError, match="closest reachable"):
        pipeline.prune(model, 0.9, target="filters", min_filters=12)


def test_ignore_keeps_layers_whole(model):
    result = pipeline.prune(model, 0.5, ignore=["conv1", "fc*"])
    assert result.model.get_layer("conv1").filters == 24
    assert result.model.get_layer("fc").units == 20
    assert result.model.get_layer("conv0").filters < 16


def test_per_layer_ratio_override(model):
    plan = pipeline.prune(model, 0.3, ratios={"conv2": 0.75}, dry_run=True).plan
    assert len(plan.kept()["conv2"]) == 32 - 24


def test_ratio_zero_reproduces_outputs(model):
    result = pipeline.prune(model, 0.0)
    x = np.random.rand(2, 16, 16, 3).astype("float32")
    np.testing.assert_array_equal(result.model(x).numpy(), model(x).numpy())
    assert result.model.count_params() == model.count_params()


def test_original_model_untouched(model):
    before = [w.copy() for w in model.get_weights()]
    config = json.dumps(model.get_config(), default=str)
    pipeline.prune(model, 0.5)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert json.dumps(model.get_config(), default=str) == config


def test_plan_is_deterministic_and_round_trips(model):
    a = pipeline.plan_pruning(model, 0.5, criterion="random", seed=3).to_json()
    b = pipeline.plan_pruning(model, 0.5, criterion="random", seed=3).to_json()
    assert a == b
    assert pipeline.PrunePlan.from_json(a).to_json() == a
    assert pipeline.plan_pruning(model, 0.5, criterion="random", seed=4).to_json() != a


def test_dry_run_summary_table(model):
    result = pipeline.prune(model, 0.5, dry_run=True)
    assert result.model is None
    table = result.plan.summary_table()
    assert "conv0" in table and "fc" in table and "removed:" in table
    conv0 = next(l for l in result.plan.layers if l.name == "conv0")
    assert conv0.channels_before == 16 and conv0.channels_after < 16


def test_summary_matches_the_rebuilt_model(model):
    result = pipeline.prune(model, 0.5)
    plan = result.plan
    assert plan.params_after == result.model.count_params()
    assert plan.params_before == model.count_params()
    assert plan.macs_after == pipeline.count_macs(result.model)
    assert plan.macs_before == pipeline.count_macs(model)


def test_count_macs_follows_the_documented_convention(K):
    L = K.layers
    x = inp = K.Input((10, 10, 3))
    x = L.Conv2D(8, 3, padding="same", name="c")(x)                 # 10*10*9*3*8
    x = L.DepthwiseConv2D(3, strides=2, padding="same")(x)            # 5*5*9*8
    x = L.SeparableConv2D(4, 3, padding="valid", depth_multiplier=2)(x)  # 3*3*(9*16 + 16*4)
    x = L.Conv2D(4, 1, groups=2)(x)                                   # 3*3*1*2*4
    x = L.Conv2DTranspose(6, 2, strides=2)(x)                          # 3*3*4*4*6
    x = L.Flatten()(x)
    x = L.Dense(5)(x)                                                  # 6*6*6*5
    m = K.Model(inp, x)
    expected = (10 * 10 * 9 * 3 * 8 + 5 * 5 * 9 * 8 + 3 * 3 * (9 * 16 + 16 * 4)
                + 3 * 3 * 1 * 2 * 4 + 3 * 3 * 4 * 4 * 6 + 6 * 6 * 6 * 5)
    assert pipeline.count_macs(m) == expected
    assert pipeline.count_params(m) == m.count_params()


def test_pruned_model_saves_reloads_and_converts(model, K, tmp_path):
    result = pipeline.prune(model, 0.5)
    assert type(result.model).__module__.split(".")[0] == K.__name__  # the user's own Keras
    x = np.random.rand(2, 16, 16, 3).astype("float32")
    expected = result.model(x).numpy()
    for name in ("m.keras", "m.h5"):
        result.model.save(tmp_path / name)
        again = K.models.load_model(tmp_path / name)
        np.testing.assert_allclose(again(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    tflite = tf.lite.TFLiteConverter.from_keras_model(result.model).convert()
    assert len(tflite) > 1000


@pytest.mark.parametrize("kwargs, message", [
    ({"ratio": 1.0}, "must be in \\[0, 1\\)"),
    ({"ratio": -0.1}, "must be in \\[0, 1\\)"),
    ({"ratio": 0.5, "target": "latencies"}, "unknown target 'latencies'; choose one of: filters, latency, macs"),
    ({"ratio": 0.5, "scope": "world"}, "unknown scope 'world'"),
    ({"ratio": 0.5, "round_to": 0}, "round_to must be >= 1"),
    ({"ratio": 0.5, "min_filters": 0}, "min_filters must be >= 1"),
])
def test_bad_arguments_are_named(model, kwargs, message):
    kwargs = dict(kwargs)  # the parameter dict is shared by both Kerases' runs
    ratio = kwargs.pop("ratio")
    with pytest.raises(pipeline.TargetError, match=message):
        pipeline.prune(model, ratio, **kwargs)


def test_unknown_criterion_lists_valid_ones(model):
    with pytest.raises(pipeline.RegistryError, match="bn_gamma, fpgm, l1, l2, random, taylor"):
        pipeline.prune(model, 0.5, criterion="l3")


def test_taylor_without_data_says_what_to_pass(model):
    with pytest.raises(pipeline.PruningError, match="needs data"):
        pipeline.prune(model, 0.5, criterion="taylor")


def test_registering_a_criterion_twice_fails():
    with pytest.raises(pipeline.RegistryError, match="already registered"):
        pipeline.register_criterion("l1")(lambda analysis, context: None)


def test_plan_for_another_model_is_refused(model, K):
    plan = pipeline.plan_pruning(model, 0.5)
    other = small_cnn(K, widths=(16, 24, 40))
    with pytest.raises(pipeline.PlanError, match="does not fit"):
        pipeline.apply_plan(other, plan)
    with pytest.raises(pipeline.PlanError, match="not a pruning plan"):
        pipeline.PrunePlan.from_json("{\"format\": 1}")


def test_a_prune_config_and_keywords_make_the_same_plan(model):
    config = pipeline.PruneConfig(ratio=0.5, criterion="l2", round_to=4, ignore="conv1")
    by_config = pipeline.plan_pruning(model, config)
    by_keywords = pipeline.plan_pruning(model, 0.5, criterion="l2", round_to=4, ignore=("conv1",))
    assert by_config.to_json() == by_keywords.to_json()
    assert by_config.settings == config.to_dict()
    assert pipeline.PruneConfig.from_dict(by_config.settings) == config


def test_keywords_replace_the_config_fields(model):
    config = pipeline.PruneConfig(ratio=0.3, target="filters")
    plan = pipeline.plan_pruning(model, config, ratio=0.5)
    assert plan.settings["ratio"] == 0.5 and plan.settings["target"] == "filters"
    with pytest.raises(pipeline.TargetError, match="expected a PruneConfig or a ratio"):
        pipeline.prune(model, "half")


def test_auto_is_the_default_and_its_plan_replays_from_json(K):
    K.utils.set_random_seed(0)
    model = small_cnn(K, widths=(8, 32, 64), dense=40)  # steps 4, 16 and 32; fc (40) by 16
    assert pipeline.PruneConfig().round_to == "auto"
    result = pipeline.prune(model, 0.5)
    plan = result.plan
    assert plan.settings["round_to"] == "auto"
    assert plan.alignment["steps"] == {"conv0": 4, "conv1": 16, "conv2": 32, "fc": 16}
    assert plan.alignment["level"] == 0 and "32 (1 group)" in plan.alignment["summary"]
    for g in plan.groups:
        assert len(g.keep) in pipeline.pruning.lanes.ladder(g.size, plan.alignment["steps"][g.name])
    again = pipeline.PrunePlan.from_json(plan.to_json())
    assert again.alignment == plan.alignment
    assert pipeline.PruneConfig.from_dict(again.settings) == pipeline.PruneConfig(0.5)
    replayed = pipeline.apply_plan(model, again)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(replayed(x), result.model(x), rtol=1e-5, atol=1e-5)


def test_integer_round_to_plans_record_no_auto_alignment(model):
    plan = pipeline.plan_pruning(model, 0.4, round_to=8)
    assert plan.alignment is None and plan.settings["round_to"] == 8
    assert "alignment" not in json.loads(plan.to_json())
