"""pipeline.run.prune_settings: config.prune as a PruneConfig, round_to="auto" included."""
import ml_collections
import pytest

from configs import common
from pipeline.run import prune_settings


def section(round_to):
    p = common.prune()
    # What the configs declare so that "auto" and integers both fit (see the report's note).
    with p.unlocked():
        del p["round_to"]
        p.round_to = ml_collections.FieldReference("auto", field_type=object)
    p.round_to = round_to
    return p


@pytest.mark.parametrize("given, value", [("auto", "auto"), ("16", 16), (8, 8)])
def test_round_to_takes_auto_an_integer_or_an_integer_string(given, value):
    assert prune_settings.prune_config(section(given), seed=0).round_to == value


def test_auto_reads_the_workdirs_latency_tables_without_a_latency_target(tmp_path):
    config = prune_settings.prune_config(section("auto"), seed=0, cache_dir=str(tmp_path))
    assert config.target == "macs" and config.latency.cache_dir == str(tmp_path)
    assert prune_settings.prune_config(section(16), 0, str(tmp_path)).latency is None
    # No cache there yet: nothing is named, so the plan holds no workdir path.
    missing = str(tmp_path / "latency_tables")
    assert prune_settings.prune_config(section("auto"), 0, missing).latency is None
