"""pipeline.latency.steps: round_to="auto" on a latency table's speed steps (synthetic tables)."""
import math
import os

import pytest

import pipeline
from latency_synthetic import chain, setup, synthetic, write_device_table
from pipeline.latency import measure, steps
from pipeline.latency.table import architecture
from pipeline.pruning import lanes


def _tiles(tile):
    """Each layer costs 1 ms per started tile of ``tile`` output channels."""
    return lambda layer, c_in, c_out: float(math.ceil(c_out / tile))


@pytest.fixture(scope="module")
def model():
    return chain([64, 64])


@pytest.mark.parametrize("tile, widths", [
    (16, (16, 32, 48, 64)),  # 48 is a step of this device, not of the rule
    (32, (32, 64)),  # 16 costs as much as 32 here, so it goes although the rule allows it
])
def test_a_group_keeps_the_widths_where_its_table_gets_faster(model, tile, widths):
    analysis, _, _, layers = setup(model)
    table = synthetic(layers, _tiles(tile))
    group_layers = [l for l in layers if l.name == "conv0"]
    assert steps.ladder(64, group_layers, table) == widths


def test_auto_with_a_device_table_snaps_to_its_steps(model, tmp_path):
    analysis, _, _, layers = setup(model)
    path = write_device_table(synthetic(layers, _tiles(16)), tmp_path / "t.json", "phone")
    # 25% of the MACs: (48, 64) channels, which the rule's (16, 32, 64) cannot reach.
    plan = pipeline.plan_pruning(model, 0.25, latency=pipeline.LatencyConfig(table=path))
    assert plan.settings["round_to"] == "auto"
    assert plan.alignment["steps"] == {"conv0": "table", "conv1": "table"}
    assert plan.alignment["level"] == 0
    assert {len(g.keep) for g in plan.groups} <= {16, 32, 48, 64}
    assert abs(plan.removed["macs"] - 0.25) <= 0.02


def test_a_cached_host_table_is_read_and_nothing_measured(model, tmp_path, monkeypatch):
    analysis, _, _, layers = setup(model)
    folder = tmp_path / measure.host_device()
    folder.mkdir()
    (folder / f"{architecture(analysis)}.json").write_text(synthetic(layers, _tiles(32)).to_json())
    monkeypatch.setattr(measure, "time_points", lambda *a, **k: pytest.fail("measured"))
    config = pipeline.LatencyConfig(cache_dir=str(tmp_path))
    assert dict(steps.ladders(analysis, config)) == {"conv0": (32, 64), "conv1": (32, 64)}
    empty = pipeline.LatencyConfig(cache_dir=str(tmp_path / "none"))
    assert steps.ladders(analysis, empty) == ()  # no table: the rule
    plan = pipeline.plan_pruning(model, 0.5, latency=empty)
    assert plan.alignment["level"] == 0 and plan.alignment["steps"] == {"conv0": lanes.auto_step(64), "conv1": lanes.auto_step(64)}
    assert not os.path.exists(tmp_path / "none")


def test_integer_round_to_still_refuses_latency_settings_for_macs(model):
    with pytest.raises(pipeline.TargetError, match="need target='latency'"):
        pipeline.plan_pruning(model, 0.5, round_to=8, latency=pipeline.LatencyConfig())
