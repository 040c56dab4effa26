"""pipeline.PruneConfig: validated on construction, frozen, and round-trips through JSON."""
import dataclasses
import json

import pytest

import pipeline


def test_defaults_prune_half_the_macs_globally_by_l1():
    config = pipeline.PruneConfig()
    assert (config.ratio, config.target, config.criterion, config.scope) == (
        0.5, "macs", "l1", "global")
    assert config.latency is None


@pytest.mark.parametrize("config", [
    pipeline.PruneConfig(ratio=0.3, target="filters", scope="layer", round_to=8, min_filters=2,
                         ignore=("head*",), ratios={"conv1": 0.1}, seed=4),
    pipeline.PruneConfig(ratio=0.4, target="latency",
                         latency=pipeline.LatencyConfig(tolerance=0.1, utility="sum")),
])
def test_round_trips_through_json(config):
    text = json.dumps(config.to_dict())
    assert pipeline.PruneConfig.from_dict(json.loads(text)) == config


def test_values_are_normalised_and_hashable():
    config = pipeline.PruneConfig(ratio=1 / 2, ignore="conv1", ratios={"b": 0.2, "a": 0.1},
                                  round_to=8.0)
    assert config.ignore == ("conv1",)
    assert config.ratios == (("a", 0.1), ("b", 0.2))
    assert config.round_to == 8 and isinstance(config.round_to, int)
    assert hash(config) == hash(pipeline.PruneConfig(ratio=0.5, ignore=("conv1",),
                                                     ratios=(("a", 0.1), ("b", 0.2)), round_to=8))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.ratio = 0.7


def test_latency_target_gets_default_latency_settings():
    assert pipeline.PruneConfig(target="latency").latency == pipeline.LatencyConfig()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"ratio": 1.0}, pipeline.TargetError, r"must be in \[0, 1\)"),
    ({"target": "flops"}, pipeline.TargetError, "unknown target 'flops'; choose one of: filters"),
    ({"scope": "world"}, pipeline.TargetError, "unknown scope 'world'"),
    ({"criterion": "l3"}, pipeline.RegistryError, "unknown criterion 'l3'"),
    ({"round_to": 0}, pipeline.TargetError, "round_to must be >= 1"),
    ({"ratios": {"conv1": 1.5}}, pipeline.TargetError, "per-layer ratio for 'conv1'"),
    ({"latency": pipeline.LatencyConfig(), "round_to": 8}, pipeline.TargetError,
     "need target='latency'"),
    ({"round_to": "fast"}, pipeline.TargetError, "round_to must be an integer >= 1 or 'auto'"),
])
def test_bad_values_fail_on_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        pipeline.PruneConfig(**kwargs)


def test_errors_name_the_python_argument():
    with pytest.raises(pipeline.TargetError) as caught:
        pipeline.PruneConfig(scope="world")
    assert caught.value.argument == "scope"


def test_replace_validates_again():
    config = pipeline.PruneConfig()
    assert config.replace(ratio=0.7).ratio == 0.7
    with pytest.raises(pipeline.TargetError):
        config.replace(ratio=2.0)
