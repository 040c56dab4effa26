"""A requested variant that fails, through the command line: the run finishes, the other
variants and the report are written, the failed one has no file, and the exit status is 3.

``export.float_rtol=1e-12`` asks float variants to match their Keras model exactly, which
the RGB front's rounding (~1e-7) never does, so ``pruned_fp32`` fails its parity check on
any model while ``pruned_int8`` (checked by top-1 agreement) passes.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "default.py") + ":quick"
VARIANTS = "--config.export.variants=('pruned_fp32','pruned_int8')"
SMALL = ("--config.sensitivity.enabled=False", "--config.data.subset=1000",
         "--config.data.test_subset=200", VARIANTS)
FAIL_FP32 = "--config.export.float_rtol=1e-12"

pytestmark = pytest.mark.slow  # three runs of the pipeline: 5 min here under load


def run_main(workdir, *overrides):
    command = [sys.executable, "-m", "pipeline.main", f"--config={CONFIG}",
               f"--workdir={workdir}", *SMALL, *overrides]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def report(workdir):
    return json.loads((workdir / "report.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A good run, then the same workdir with pruned_fp32 made to fail, then good again."""
    workdir = tmp_path_factory.mktemp("outcomes")
    good = run_main(workdir)
    assert good.returncode == 0, good.stderr[-3000:]
    first = report(workdir)
    failing = run_main(workdir, FAIL_FP32)
    failed = report(workdir)
    failed["markdown"] = (workdir / "report.md").read_text()
    listing = sorted(os.listdir(workdir / "tflite"))
    again = run_main(workdir)
    return workdir, first, failing, failed, listing, again


def test_a_failed_variant_gives_status_3_and_one_line_on_stderr(runs):
    _, _, failing, _, _, _ = runs
    assert failing.returncode == 3, failing.stderr[-3000:]
    lines = [l for l in failing.stderr.splitlines() if l.startswith("prune-pipeline:")]
    assert len(lines) == 1 and lines[0].startswith(
        "prune-pipeline: variant failed: pruned_fp32: variant 'pruned_fp32': "
        "tflite/pruned_fp32.tflite differs from its Keras model by")


def test_the_report_records_each_variant_with_its_status(runs):
    workdir, first, _, failed, _, _ = runs
    assert [(v["name"], v["status"]) for v in first["variants"]] == [
        ("pruned_fp32", "ok"), ("pruned_int8", "ok")]
    fp32, int8 = failed["variants"]
    assert (fp32["status"], int8["status"]) == ("failed", "ok")
    assert "relative" in fp32["reason"] and "> 1e-12" in fp32["reason"]
    assert fp32["tflite"] is None and fp32["accuracy"] is None and fp32["notes"] == []
    assert int8["tflite"] == "tflite/pruned_int8.tflite" and 0 <= int8["accuracy"] <= 1
    lines = failed["markdown"].splitlines()
    assert any(l.startswith("| pruned_fp32 | failed: variant 'pruned_fp32': ") for l in lines)
    assert any(l.startswith("| pruned_int8 | 0.") for l in lines)
    notes = lines[lines.index("## Variant notes"):]
    assert notes[notes.index("**pruned_fp32**") + 2].startswith(
        "- failed, no file written: variant 'pruned_fp32': tflite/pruned_fp32.tflite differs")


def test_the_failed_variant_leaves_no_file_not_even_the_earlier_runs(runs):
    _, _, failing, _, listing, _ = runs
    assert not [name for name in listing if name.startswith("pruned_fp32")]
    assert "pruned_int8.tflite" in listing and "pruned_int8.eval.json" in listing
    assert "[export] pruned_fp32: failed: variant 'pruned_fp32'" in failing.stdout


def test_the_next_run_retries_it_and_succeeds(runs):
    workdir, first, _, _, _, again = runs
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[baseline] up to date" in again.stdout
    assert "[export] tflite/pruned_fp32.tflite (" in again.stdout  # made again, not a stamp's
    last = report(workdir)
    assert [v["status"] for v in last["variants"]] == ["ok", "ok"]
    assert last["variants"][0]["size_bytes"] == first["variants"][0]["size_bytes"]
    assert (workdir / "tflite" / "pruned_fp32.tflite").exists()
