"""Tests of the pipeline.litert.ab CLI on two tiny models: table, JSON, interleaving, errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras

from pipeline.litert import ab as benchmark
from pipeline.litert import timing as profile

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--min_runs=5", "--min_secs=0.02", "--warmup_runs=1"]


def _convert(path, filters):
    inputs = tf_keras.Input((16, 16, 3))
    x = tf_keras.layers.Conv2D(filters, 3, activation="relu")(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(4)(x))
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    return _convert(folder / "wide.tflite", 32), _convert(folder / "narrow.tflite", 4)


def test_table_and_json(models, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = benchmark.run(["benchmark", f"--tflite={models[0]}", f"--tflite={models[1]}",
                          "--threads=1,2", "--repeats=2", f"--json={out}", *FAST])
    assert code == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["model", "threads", "p50", "ms"]
    rows = [line.split() for line in lines[1:5]]
    assert [(r[0], r[1]) for r in rows] == [("wide.tflite", "1"), ("wide.tflite", "2"),
                                            ("narrow.tflite", "1"), ("narrow.tflite", "2")]
    assert rows[0][6:] == ["1.00x", "1.00-1.00"]  # the baseline against itself
    assert lines[5] == f"wrote {out}"

    data = json.loads(out.read_text())
    assert data["settings"]["repeats"] == 2 and data["settings"]["threads"] == [1, 2]
    assert [m["tflite"] for m in data["models"]] == [str(p) for p in models]
    for model in data["models"]:
        assert set(model["latency_ms"]) == {"1", "2"}
        for t, latency in model["latency_ms"].items():
            assert set(latency) == {"p50", "p90", "mean"}
            low, high = model["p50_range_ms"][t]
            assert 0 < low <= latency["p50"] <= high
            assert model["speedup"][t]["min"] <= model["speedup"][t]["value"] <= \
                model["speedup"][t]["max"]
            assert model["runs"][t] >= 2 * 5
    assert data["models"][0]["speedup"]["1"] == {"value": 1.0, "min": 1.0, "max": 1.0}
    assert os.listdir(tmp_path) == ["bench.json"]  # the temp file was renamed, not left


def test_runs_are_interleaved_and_the_start_rotates(models, monkeypatch):
    calls = []
    original = profile.Session.run_ms

    def recording(self):
        calls.append(self.path.name)
        return original(self)

    monkeypatch.setattr(profile.Session, "run_ms", recording)
    config = profile.ProfileConfig(min_runs=3, min_secs=0.0, warmup_runs=0)
    result = benchmark.compare(models, threads=(1,), repeats=2, config=config)

    rounds = [tuple(calls[i:i + 2]) for i in range(0, len(calls), 2)]
    assert set(rounds) == {("wide.tflite", "narrow.tflite"), ("narrow.tflite", "wide.tflite")}
    assert rounds[0] == ("wide.tflite", "narrow.tflite")
    assert rounds[-1] == ("narrow.tflite", "wide.tflite")  # repeat 2 starts with the other
    assert [m.tflite for m in result.models] == [str(p) for p in models]  # order kept


def test_no_xnnpack_flag(models, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert benchmark.run(["benchmark", f"--tflite={models[1]}", "--threads=1", "--repeats=1",
                          "--no_xnnpack", "--nopin", f"--json={out}", *FAST]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert settings["xnnpack"] is False and settings["pin_single_thread"] is False
    # Flags do not leak into the next in-process run.
    assert benchmark.run(["benchmark", f"--tflite={models[1]}", "--threads=1", "--repeats=1",
                          f"--json={out}", *FAST]) == 0
    assert json.loads(out.read_text())["settings"]["xnnpack"] is True


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.tflite", "missing.tflite: file not found"),
    (lambda d: (d / "notes.tflite", (d / "notes.tflite").write_text("hi"))[0],
     "notes.tflite: not a TFLite model"),
], ids=["missing", "not_tflite"])
def test_bad_input_is_one_line_on_stderr(models, tmp_path, capsys, make, message):
    code = benchmark.run(["benchmark", f"--tflite={models[0]}", f"--tflite={make(tmp_path)}",
                          *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("benchmark: error: ") and message in err[0]


def test_bad_threads_and_unknown_flags(models, capsys):
    assert benchmark.run(["benchmark", f"--tflite={models[0]}", "--threads=1,x"]) == 1
    assert "--threads=1,x: expected comma-separated positive integers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        benchmark.run(["benchmark", f"--tflite={models[0]}", "--thread=1"])
    assert exit_info.value.code == 1


def test_command_line_error_has_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline.litert.ab",
                           f"--tflite={tmp_path / 'absent.tflite'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"benchmark: error: {tmp_path / 'absent.tflite'}: file not found; "
        "pass the path of an existing .tflite model")
