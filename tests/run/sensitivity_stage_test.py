"""The sensitivity stage: the scan written to sensitivity.json, skipped on a rerun, or off."""
import json
import os

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
from configs import default
from pipeline.run import stages
from pipeline.run.results import ModelRecord, ModelResult
from pipeline.run.store import Store
from stages_test import datasets, small_cnn


def config():
    c = default.get_config("quick")
    c.sensitivity.ratios = (0.5,)
    return c


def run(c, base, store):
    return stages.sensitivity(c.sensitivity, c.prune, base, stages.Data(datasets(), "d"), store,
                              seed=c.seed)


def baseline(key):
    return ModelResult(small_cnn(), "baseline.keras", key, ModelRecord(0.0, 0, 0))


def test_stage_writes_json_and_is_skipped_on_rerun(tmp_path, capsys):
    store, base = Store(str(tmp_path)), baseline("base-key")
    first = run(config(), base, store)
    path = tmp_path / "sensitivity.json"
    assert json.loads(path.read_text()) == first
    assert set(first["groups"]) == {"conv0", "conv1", "fc"}
    stamp = json.loads((tmp_path / "sensitivity.json.stamp.json").read_text())["record"]
    assert stamp == {"seconds": first["seconds"],
                     "baseline_accuracy": first["baseline_accuracy"]}
    before = path.stat().st_mtime_ns
    capsys.readouterr()
    again = run(config(), base, store)
    assert "[sensitivity] up to date: sensitivity.json (3 groups)" in capsys.readouterr().out
    assert again == first and path.stat().st_mtime_ns == before
    run(config(), baseline("other-key"), store)  # another baseline: scanned again
    assert "up to date" not in capsys.readouterr().out


def test_stage_is_off_when_disabled(tmp_path):
    c = config()
    c.sensitivity.enabled = False
    assert run(c, baseline("k"), Store(str(tmp_path))) is None
    assert not os.path.exists(tmp_path / "sensitivity.json")
