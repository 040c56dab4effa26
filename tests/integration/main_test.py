"""The whole pipeline, run as its users run it (a subprocess) on the quick config.

One module-scoped run in a temporary workdir feeds the schema and number
checks; a second run in the same workdir overrides ``prune.ratio`` and must
reuse the baseline; a family run (``prune.ratio`` a tuple) starts from the
first run's baseline; bad flags and values fail with one line on stderr.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tf_keras
from configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "default.py")
VARIANT_KEYS = {"name", "tflite", "macs", "params", "size_bytes", "accuracy", "latency_ms",
                "parity", "notes"}
VARIANTS = ("baseline_fp32", "pruned_fp32", "pruned_int8", "pruned_2of4", "pruned_block_fc",
            "pruned_fp16", "pruned_dynamic_int8")



def run_main(workdir, *overrides, config=CONFIG + ":quick"):
    command = [sys.executable, "-m", "pipeline.main", f"--config={config}",
               f"--workdir={workdir}", *overrides]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def error_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.startswith("prune-pipeline: error:")]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quick")
    done = run_main(workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(workdir / "report.json") as f:
        return workdir, json.load(f), done


def load_keras(workdir, name):
    return tf_keras.models.load_model(os.path.join(workdir, name), compile=False)


def test_report_schema(first_run):
    workdir, report, _ = first_run
    assert {"config", "baseline", "variants"} <= set(report)
    quick = default.get_config("quick")
    assert report["config"]["prune"]["ratio"] == 0.5
    assert report["config"]["train"]["epochs"] == quick.train.epochs
    assert [v["name"] for v in report["variants"]] == list(VARIANTS)
    for variant in report["variants"]:
        assert VARIANT_KEYS <= set(variant)
        assert not os.path.isabs(variant["tflite"])
        assert isinstance(variant["latency_ms"], dict)
    assert (workdir / "report.md").read_text().count("| ") > 4


def test_report_numbers_match_the_files(first_run):
    workdir, report, _ = first_run
    for variant in report["variants"]:
        path = os.path.join(workdir, variant["tflite"])
        assert variant["size_bytes"] == os.path.getsize(path)
        model = load_keras(workdir, variant["keras"])
        assert variant["macs"] == pipeline.count_macs(model)
        assert variant["params"] == pipeline.count_params(model)
        assert 0.0 <= variant["accuracy"] <= 1.0
    base, pruned = report["variants"][:2]
    assert base["keras"] == "baseline.keras" and pruned["keras"] == "pruned.keras"
    assert pruned["macs"] < 0.55 * base["macs"]
    assert pruned["size_bytes"] < base["size_bytes"]


def test_the_quick_run_looks_like_the_real_thing(first_run):
    # Issue 15: 33% and 29% told a newcomer the tool was broken (measured: 87.0%, 87.2%).
    _, report, _ = first_run
    assert report["baseline"]["accuracy"] >= 0.85
    assert report["pruned"]["accuracy"] >= 0.80


def test_the_quick_run_in_keras3_is_as_good_and_stays_in_keras3(tmp_path):
    """``model.keras=keras``: the baseline is built and trained in Keras 3 and every stage
    after it stays there: the same bars as the tf_keras quick run, every variant written
    and verified, Keras 3 files named in the report."""
    import keras
    done = run_main(tmp_path, "--config.model.keras=keras")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["baseline"]["accuracy"] >= 0.85 and report["pruned"]["accuracy"] >= 0.80
    assert abs(report["pruned"]["removed"]["macs"] - 0.5) <= 0.03
    for model in ("baseline", "pruned"):
        assert report[model]["framework"] == f"Keras {keras.__version__}"
        loaded = keras.saving.load_model(tmp_path / report[model]["keras"], compile=False)
        assert type(loaded).__module__.startswith("keras.")
    assert [v["name"] for v in report["variants"]] == list(VARIANTS)
    assert all(v["status"] == "ok" for v in report["variants"]), report["variants"]
    pruned = report["variants"][1]
    assert abs(pruned["accuracy"] - report["pruned"]["accuracy"]) <= 0.01
    from pipeline.litert import mediapipe_client  # the files load in MediaPipe Tasks as is
    labels = (tmp_path / "tflite" / "labels.txt").read_text().split()
    pixels = (np.random.default_rng(0).random((2, 28, 28, 3)) * 255).astype(np.uint8)
    for v in report["variants"]:
        answers = mediapipe_client.classify(str(tmp_path / v["tflite"]), pixels)
        assert len(answers) == 2 and all(labels[i] == name for i, name in answers), v["name"]


def test_tflite_accuracy_agrees_with_keras(first_run):
    _, report, _ = first_run
    base, pruned = report["variants"][:2]
    # Same weights, same test images: float32 TFLite differs only by rounding.
    assert abs(base["accuracy"] - report["baseline"]["accuracy"]) <= 0.01
    assert abs(pruned["accuracy"] - report["pruned"]["accuracy"]) <= 0.01


def test_plan_and_stamps_are_written(first_run):
    workdir, report, done = first_run
    plan = pipeline.PrunePlan.from_json((workdir / "plan.json").read_text())
    assert plan.settings["ratio"] == 0.5 and plan.settings["criterion"] == "l1"
    assert plan.macs_after == report["pruned"]["macs"]
    assert abs(plan.removed["macs"] - 0.5) <= 0.02  # round_to=16 steps land within 2 points
    assert f"removed: {plan.removed['macs']:.1%} of MACs" in done.stdout  # the summary table
    for name in ("baseline.keras", "pruned_initial.keras", "pruned.keras",
                 "tflite/pruned_fp32.tflite"):
        assert (workdir / f"{name}.stamp.json").exists()
    leftovers = [f for _, _, files in os.walk(workdir) for f in files if ".tmp" in f]
    assert not leftovers


def test_sensitivity_and_plots_are_written(first_run):
    workdir, report, done = first_run
    curves = json.loads((workdir / "sensitivity.json").read_text())
    assert (workdir / "sensitivity.json.stamp.json").exists()
    assert report["sensitivity"] == "sensitivity.json"
    assert set(curves["groups"]) == {p["name"] for p in
                                     json.loads((workdir / "plan.json").read_text())["groups"]}
    for points in curves["groups"].values():  # quick: ratios (0.3, 0.7) after ratio 0
        assert [p["ratio"] for p in points] == [0.0, 0.3, 0.7]
        assert all(0.0 <= p["accuracy"] <= 1.0 for p in points)
    assert "[sensitivity] 14/14 " in done.stdout
    markdown = (workdir / "report.md").read_text()
    assert set(report["plots"]) == {"accuracy_vs_macs", "accuracy_vs_latency", "channels",
                                    "sensitivity"}
    for relative in report["plots"].values():
        assert (workdir / relative).read_bytes()[:4] == b"\x89PNG"
        assert f"]({relative})" in markdown
    assert list((workdir / "finetune" / "tensorboard").glob("*/events.out.tfevents.*"))


def test_every_variant_ships_verified_with_metadata(first_run):
    from ai_edge_litert.interpreter import Interpreter
    from pipeline.export import metadata
    from pipeline.export import sparse_check
    from pipeline.export import variants as export
    workdir, report, _ = first_run
    variants = {v["name"]: v for v in report["variants"]}
    labels = (workdir / "tflite" / "labels.txt").read_text().splitlines()
    assert len(labels) == 10 and labels[0] == "T-shirt/top"
    for name, v in variants.items():
        path = str(workdir / v["tflite"])
        (inp,) = Interpreter(model_path=path).get_input_details()
        assert list(inp["shape"]) == [1, 28, 28, 3]
        assert inp["dtype"] == (np.uint8 if name == "pruned_int8" else np.float32)
        meta = metadata.read_metadata(path)
        assert meta["files"]["labels.txt"].splitlines() == labels
        assert v["parity"]["examples"] == 128
        if name in ("pruned_int8", "pruned_dynamic_int8"):
            assert v["parity"]["criterion"] == "agreement"
            assert v["parity"]["agreement_with_ties"] >= (
                default.get_config("quick").export.int8_min_agreement)
        else:
            assert v["parity"]["max_rel_diff"] <= (
                export.FP16_RTOL if name == "pruned_fp16" else 1e-4)
    sparse_check.check_2of4(str(workdir / variants["pruned_2of4"]["tflite"]))
    sparse_check.check_block_fc(str(workdir / variants["pruned_block_fc"]["tflite"]))
    for name in ("pruned_int8", "pruned_2of4", "pruned_block_fc", "pruned_fp16",
                 "pruned_dynamic_int8"):
        notes = " ".join(variants[name]["notes"])
        assert "than pruned_fp32" in notes and "% of pruned_fp32" in notes  # measured, either way
    assert "2:4 verified in the file" in " ".join(variants["pruned_2of4"]["notes"])
    assert "## Variant notes" in (workdir / "report.md").read_text()


def test_override_reuses_the_baseline(first_run):
    workdir, report, _ = first_run
    stamp = workdir / "baseline.keras.stamp.json"
    before = (stamp.stat().st_mtime_ns, (workdir / "baseline.keras").stat().st_mtime_ns)
    done = run_main(workdir, "--config.prune.ratio=0.6")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[baseline] up to date" in done.stdout
    assert (stamp.stat().st_mtime_ns, (workdir / "baseline.keras").stat().st_mtime_ns) == before
    second = json.loads((workdir / "report.json").read_text())
    assert second["config"]["prune"]["ratio"] == 0.6
    assert json.loads((workdir / "plan.json").read_text())["settings"]["ratio"] == 0.6
    assert second["variants"][1]["macs"] < report["variants"][1]["macs"]
    assert second["variants"][0] == report["variants"][0]  # baseline export and eval reused
    assert "[sensitivity] up to date" in done.stdout  # the scan reads only the baseline


# Small: no fine-tuning epoch, two variants, a one-point scan. min_filters=16 leaves the
# plans of 0.4 and 0.6 as at 1 but makes 0.9 unreachable (81.5% at most): it fails alone.
FAMILY = ("--config.finetune.epochs=0", "--config.finetune.bn_recalibrate_batches=5",
          "--config.prune.min_filters=16", "--config.sensitivity.ratios=(0.5,)",
          "--config.sensitivity.max_batches=1",
          "--config.export.variants=('baseline_fp32','pruned_fp32')")


def test_a_tuple_of_ratios_makes_a_family_that_resumes_and_grows(first_run, tmp_path):
    source, _, _ = first_run
    workdir = tmp_path / "family"
    workdir.mkdir()
    # The quick run's baseline and its fp32 file: the family's keys are a single run's.
    (workdir / "tflite").mkdir()
    for name in ("baseline.keras", "tflite/baseline_fp32.tflite",
                 "tflite/baseline_fp32.eval.json"):
        for copied in (name, f"{name}.stamp.json"):
            shutil.copy(source / copied, workdir / copied)
    done = run_main(workdir, "--config.prune.ratio=(0.4, 0.6)", *FAMILY)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[baseline] up to date" in done.stdout
    assert "[export] up to date: tflite/baseline_fp32.tflite" in done.stdout
    report = json.loads((workdir / "report.json").read_text())
    family = report["family"]
    assert family["ratios"] == [0.4, 0.6] and report["config"]["prune"]["ratio"] == [0.4, 0.6]
    assert [m["dir"] for m in family["members"]] == ["ratio_0.40", "ratio_0.60"]
    for member in family["members"]:
        folder, ratio = workdir / member["dir"], member["ratio"]
        assert member["status"] == "ok" and abs(member["macs_removed"] - ratio) <= 0.03
        plan = json.loads((folder / "plan.json").read_text())
        assert plan["settings"]["ratio"] == ratio
        sub = json.loads((folder / "report.json").read_text())
        assert sub["config"]["prune"]["ratio"] == ratio and (folder / "report.md").exists()
        assert [v["name"] for v in sub["variants"]] == ["baseline_fp32", "pruned_fp32"]
        assert (folder / sub["variants"][0]["tflite"]).samefile(
            workdir / "tflite" / "baseline_fp32.tflite")  # shared, named from the folder
        assert sub["pruned"]["macs"] == pipeline.count_macs(load_keras(folder, "pruned.keras"))
    points = family["points"]
    assert [(p["ratio"], p["variant"]) for p in points] == [
        (None, "baseline_fp32"), (0.4, "pruned_fp32"), (0.6, "pruned_fp32")]
    for p in points:
        assert p["size_bytes"] == os.path.getsize(workdir / p["tflite"])
        assert p["latency_p50_ms"] > 0 and 0 <= p["accuracy"] <= 1
    cost = [(p["latency_p50_ms"], p["accuracy"]) for p in points]
    for p, (c, a) in zip(points, cost):  # on the front exactly when nothing beats it
        beaten = any(c2 <= c and a2 >= a and (c2, a2) != (c, a) for c2, a2 in cost)
        assert p["pareto"] == (not beaten)
    markdown = (workdir / "report.md").read_text()
    assert "| 0.6 | " in markdown and "ratio_0.40/tflite/pruned_fp32.tflite |" in markdown
    assert report["plots"]["family_tradeoff"] == "plots/family_tradeoff.png"
    assert "](plots/family_tradeoff.png)" in markdown
    assert (workdir / "plots" / "family_tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert report["sensitivity"] == "sensitivity.json"  # one scan, for every ratio
    assert not list(workdir.glob("ratio_*/sensitivity.json"))

    def stamps():
        return {p: p.stat().st_mtime_ns for p in workdir.rglob("*.stamp.json")}

    before = stamps()
    again = run_main(workdir, "--config.prune.ratio=(0.4, 0.6)", *FAMILY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("[prune] up to date") == 2 and "[sensitivity] up to date" in \
        again.stdout
    assert "before fine-tuning" not in again.stdout and stamps() == before
    grown = run_main(workdir, "--config.prune.ratio=(0.4, 0.6, 0.9)", *FAMILY)
    assert grown.returncode == 3, grown.stderr[-3000:]  # finished, one ratio failed
    assert grown.stdout.count("[prune] up to date") == 2 and stamps() == before
    (line,) = [l for l in grown.stderr.splitlines() if l.startswith("prune-pipeline: ")]
    assert line.startswith("prune-pipeline: ratio failed: 0.9: cannot remove 90.0% of macs")
    members = json.loads((workdir / "report.json").read_text())["family"]["members"]
    assert [m["status"] for m in members] == ["ok", "ok", "failed"]
    assert members[2]["reason"] in line and members[2]["report"] is None


def test_unknown_key_fails_with_one_line(tmp_path):
    done = run_main(tmp_path, "--config.prune.ratioo=0.6")
    assert done.returncode != 0
    (line,) = error_lines(done.stderr)
    assert "unknown config key 'ratioo'" in line and 'Did you mean "ratio"' in line
    assert "Traceback" not in done.stderr


def test_missing_workdir_is_one_line():
    done = subprocess.run([sys.executable, "-m", "pipeline.main", f"--config={CONFIG}:quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "prune-pipeline: error: --workdir must be given, e.g. --config=configs/default.py "
        "--workdir=workdir/default"]


def test_importing_main_leaves_other_tools_flags_parseable():
    """pipeline.main's required flags must not break another CLI parsed in the same process."""
    from pipeline import main  # noqa: F401
    from pipeline.litert import ab as benchmark
    assert benchmark.parse_argv(["benchmark", "--threads=1"]) == ["benchmark"]


def test_bad_value_fails_before_any_work(tmp_path):
    done = run_main(tmp_path / "w", "--config.prune.ratio=1.5", "--config.prune.criterion=l3")
    assert done.returncode == 1
    assert error_lines(done.stderr) == [
        "prune-pipeline: error: config.prune.criterion='l3' is not one of: "
        + ", ".join(pipeline.criterion_names())]
    assert not (tmp_path / "w" / "baseline.keras").exists()


def test_missing_data_names_the_path(tmp_path):
    done = run_main(tmp_path / "w", f"--config.data.dir={tmp_path / 'nowhere'}")
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert str(tmp_path / "nowhere") in line and "--config.data.dir" in line
