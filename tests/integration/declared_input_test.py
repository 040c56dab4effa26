"""An outside model through the command line: its file says its input, the config says nothing.

A tf_keras ``.h5`` taking 64x64x1 images into 7 classes, 8-32 channels wide,
runs on a folder of 32x32 RGB images in 7 class folders with no
``model.input_size``/``model.channels`` override and ``round_to=16`` (an
integer alignment; the default ``auto`` takes finer steps by itself), which
cannot remove half its MACs: the data are loaded at
64x64x1, the prune stage falls back to a finer alignment and says so in
``report.json`` and ``report.md``, and the run exits 0. A model with 5
outputs against the 7 class folders fails before any stage with one line.
"""
import json
import os
import subprocess
import sys

import pytest

from declared_inputs import image_folder, narrow_model, save_h5

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _command(workdir, model, images):
    return [sys.executable, "-m", "pipeline.main", f"--config={ROOT}/configs/default.py:quick",
            f"--workdir={workdir}", f"--config.model.path={model}",
            "--config.data.name=folder", f"--config.data.dir={images}",
            "--config.train.batch_size=8", "--config.sensitivity.enabled=False",
            "--config.prune.round_to=16",
            "--config.export.variants=('pruned_fp32',)", "--config.evaluate.latency_threads=()"]


def _run(command):
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("declared")
    return {"model": save_h5(narrow_model(), root / "outside.h5"),
            "five": save_h5(narrow_model(classes=5), root / "five.h5"),
            "images": image_folder(root / "images")}


@pytest.mark.slow
def test_outside_model_runs_at_its_declared_input(files, tmp_path):
    workdir = tmp_path / "run"
    done = _run(_command(workdir, files["model"], files["images"]))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((workdir / "report.json").read_text())
    assert report["config"]["model"]["input_size"] == 0  # no override: the file said 64x64x1
    assert report["pruned"]["round_to"]["asked"] == 16
    assert report["pruned"]["round_to"]["used"] < 16
    assert abs(report["pruned"]["removed"]["macs"] - 0.5) <= 0.02
    assert "cannot reach 50.0% of macs; pruning at round_to=" in done.stdout
    markdown = (workdir / "report.md").read_text()
    used = report["pruned"]["round_to"]["used"]
    assert (f"Alignment: prune.round_to=16 cannot reach the target on this model; channels "
            f"were kept in multiples of {used} instead.") in markdown.splitlines()
    assert [v["name"] for v in report["variants"]] == ["pruned_fp32"]
    assert (workdir / report["variants"][0]["tflite"]).exists()


def test_class_count_mismatch_fails_in_one_line(files, tmp_path):
    workdir = tmp_path / "run"
    done = _run(_command(workdir, files["five"], files["images"]))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("prune-pipeline: error: ")
    assert "five.h5 has 5 output classes but the data has 7 (class_0, class_1" in lines[-1]
    assert not (workdir / "baseline.keras").exists()
