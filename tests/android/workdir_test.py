"""``python -m pipeline.android run --workdir``: a finished run's variants on a (fake) phone."""
import json
from pathlib import Path

from pipeline.android import runner as android
from pipeline.android import workdir as run_dir


def _run(tmp_path, files):
    """A finished run's workdir: three variants, one of them not written."""
    workdir = tmp_path / "run"
    (workdir / "tflite").mkdir(parents=True)
    for name in ("baseline_fp32", "pruned_fp32"):
        (workdir / "tflite" / f"{name}.tflite").write_bytes(files[0].read_bytes())
    variants = [
        {"name": "baseline_fp32", "status": "ok", "tflite": "tflite/baseline_fp32.tflite",
         "latency_ms": {"1": {"p50": 0.4, "p90": 0.5, "mean": 0.45},
                        "2": {"p50": 0.25, "p90": 0.3, "mean": 0.27}}},
        {"name": "pruned_fp32", "status": "ok", "tflite": "tflite/pruned_fp32.tflite",
         "latency_ms": {"1": {"p50": 0.2, "p90": 0.25, "mean": 0.22}}},
        {"name": "pruned_int8", "status": "failed", "tflite": None, "reason": "agreement"},
    ]
    (workdir / "report.json").write_text(json.dumps({"variants": variants}))
    (workdir / "report.md").write_text("# Report\n\nhost figures\n")
    return workdir


def _args(workdir, binary, *extra):
    return ["android", "run", f"--workdir={workdir}", f"--benchmark_binary={binary}", *extra]


def test_every_written_variant_runs_at_each_thread_count(tmp_path, files, fake_adb, capsys):
    workdir = _run(tmp_path, files)
    assert android.run(_args(workdir, files[1], "--threads=1,4")) == 0
    calls = fake_adb.read_text().splitlines()
    pushed = [c.split()[3] for c in calls if " push " in c and c.endswith(".tflite")]
    assert [Path(p).name for p in pushed] == ["baseline_fp32.tflite", "pruned_fp32.tflite"]
    runs = [c for c in calls if "--graph=" in c]
    assert len(runs) == 4 and all("-s emulator-5554 shell" in c for c in runs)
    assert sorted(p.name for p in (workdir / "android").iterdir()) == [
        "baseline_fp32_threads1.log", "baseline_fp32_threads4.log",
        "pruned_fp32_threads1.log", "pruned_fp32_threads4.log"]

    table = json.loads((workdir / "android.json").read_text())
    assert table == json.loads(capsys.readouterr().out)
    assert table["device"] == "emulator-5554" and table["threads"] == [1, 4]
    assert list(table["variants"]) == ["baseline_fp32", "pruned_fp32"]
    row = table["variants"]["baseline_fp32"]
    assert row["device_ms"]["4"] == {"p50": 99.98, "mean": 100.123}  # the recorded log
    assert row["host_ms"] == {"1": 0.4, "2": 0.25}
    report = json.loads((workdir / "report.json").read_text())
    assert report["variants"][0]["android"]["latency_ms"]["1"]["p50"] == 99.98
    assert "android" not in report["variants"][2]  # not written, not run

    markdown = (workdir / "report.md").read_text()
    assert markdown.startswith("# Report\n\nhost figures\n\n## On the device (benchmark_model)")
    assert ("| variant | device p50, 1 thr (ms) | device p50, 4 thr (ms) | host p50, 1 thr (ms) "
            "| host p50, 2 thr (ms) |") in markdown
    assert "| baseline_fp32 | 99.980 | 99.980 | 0.400 | 0.250 |" in markdown
    assert "| pruned_fp32 | 99.980 | 99.980 | 0.200 | - |" in markdown
    # A rerun replaces the section instead of adding a second one.
    assert android.run(_args(workdir, files[1], "--threads=1,4")) == 0
    assert (workdir / "report.md").read_text().count(run_dir.SECTION) == 1


def test_without_a_device_writes_a_script_per_variant(tmp_path, files, fake_adb, monkeypatch,
                                                      capsys):
    monkeypatch.setenv("FAKE_ADB_DEVICES", "")
    workdir = _run(tmp_path, files)
    assert android.run(_args(workdir, files[1])) == 0
    assert "adb devices lists no device; wrote 2 scripts" in capsys.readouterr().out
    scripts = sorted(p.name for p in (workdir / "android").iterdir())
    assert scripts == ["android_benchmark_baseline_fp32.sh", "android_benchmark_pruned_fp32.sh"]
    text = (workdir / "android" / scripts[1]).read_text()
    assert f"--report={workdir / 'report.json'} --variant=pruned_fp32" in text
    assert not (workdir / "android.json").exists()


def test_bad_workdirs_are_one_line(tmp_path, files, capsys):
    assert android.run(_args(tmp_path / "nowhere", files[1])) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot read the run's report" in err
    assert "--workdir=<the workdir of a finished pipeline run>" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "report.json").write_text(json.dumps({"variants": []}))
    assert android.run(_args(empty, files[1])) == 1
    assert "lists no written .tflite variant" in capsys.readouterr().err
    assert android.run(_args(empty, files[1], f"--tflite={files[0]}")) == 1
    assert "needs one of --tflite=MODEL.tflite (one file) or --workdir=RUN" in (
        capsys.readouterr().err)
