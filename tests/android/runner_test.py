"""Tests of pipeline.android.runner: parsing recorded benchmark_model logs, the script, a fake adb."""
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.android import runner as android

DATA = Path(__file__).parent.parent / "fixtures" / "benchmark_model"
REGULAR_OPS = {
    "CONV_2D": {"avg_ms": 0.853, "percent": 68.459, "count": 2},
    "DEPTHWISE_CONV_2D": {"avg_ms": 0.288, "percent": 23.114, "count": 1},
    "MEAN": {"avg_ms": 0.079, "percent": 6.34, "count": 1},
    "FULLY_CONNECTED": {"avg_ms": 0.026, "percent": 2.087, "count": 1},
}


def _parse(name):
    return android.parse_log((DATA / name).read_text(), source=name)


def test_old_plain_format():
    result = _parse("old_plain.log")
    assert {k: result[k] for k in ("init_us", "first_inference_us", "warmup_avg_us",
                                   "inference_avg_us", "memory_overall_mb", "model_size_mb",
                                   "num_threads")} == {
        "init_us": 18612.0, "first_inference_us": 26004.0, "warmup_avg_us": 14787.2,
        "inference_avg_us": 14555.9, "memory_overall_mb": 37.3633, "model_size_mb": 13.9786,
        "num_threads": 1}
    assert result["inference_stats_us"] == {"count": 68, "first": 14618.0, "curr": 14410.0,
                                            "min": 14263.0, "max": 15090.0, "avg": 14555.9,
                                            "std": 166.0}
    assert result["warmup_stats_us"]["count"] == 34
    assert "peak_memory_mb" not in result and "ops_by_type" not in result


def test_info_format_with_percentiles_and_exponents():
    result = _parse("info_percentiles.log")
    assert result["init_us"] == 123450.0
    assert result["first_inference_us"] == 2.95034e+06
    assert result["warmup_avg_us"] == 6.6754e+05
    assert result["inference_avg_us"] == 100123.0
    assert result["memory_overall_mb"] == 211.5
    assert result["peak_memory_mb"] == 218.75
    assert result["model_size_mb"] == 102.161
    assert result["num_threads"] == 4
    assert result["inference_stats_us"] == {
        "count": 50, "first": 101532.0, "curr": 99871.0, "min": 97654.0, "max": 105120.0,
        "avg": 100123.0, "std": 1532.0, "p5": 98012.0, "median": 99980.0, "p95": 103456.0}
    assert result["warmup_stats_us"]["std"] == 1.14146e+06


def test_logcat_format():
    result = _parse("logcat.log")
    assert [result[k] for k in ("init_us", "first_inference_us", "warmup_avg_us",
                                "inference_avg_us", "memory_overall_mb")] == [
        3402.0, 412.0, 121.5, 118.25, 3.75]  # "Peak memory footprint (MB): ... overall=3.75"
    assert result["model_size_mb"] == 0.081234
    assert result["num_threads"] == 2
    assert result["inference_stats_us"]["median"] == 117.0


def test_absent_figures_are_null():
    text = "Inference timings in us: Init: 10, First inference: 20, Warmup (avg): nan, " \
           "Inference (avg): 5.5e+01\n"
    assert android.parse_log(text) == {"init_us": 10.0, "first_inference_us": 20.0,
                                       "warmup_avg_us": None, "inference_avg_us": 55.0,
                                       "memory_overall_mb": None}


@pytest.mark.parametrize("name", ["op_profiling_start.log", "op_profiling_info.log"])
def test_ops_by_type_come_from_the_regular_runs(name):
    result = _parse(name)
    assert result["ops_by_type"] == REGULAR_OPS  # not ModifyGraphWithDelegate (initialization)
    assert result["inference_avg_us"] == 1249.38


def test_summary_columns_are_read_by_header_name():
    # A per-node layout with [start] and [Name], columns in another order: types add up.
    rows = ["[Name]\t[node type]\t[start]\t[first]\t[avg ms]\t[%]\t[cdf%]\t[times called]",
            "conv1\tCONV_2D\t0.000\t0.5\t0.5\t50.0%\t50.0%\t1",
            "conv2\tCONV_2D\t0.5\t0.25\t2.5e-01\t25.0%\t75.0%\t1",
            "fc\tFULLY_CONNECTED\t0.75\t0.25\t0.25\t25.0%\t100.0%\t1"]
    text = "\n".join([
        "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4",
        "Operator-wise Profiling Info for Regular Benchmark Runs:",
        "============================== Summary by node type ==============================",
        *["\t" + r for r in rows], "", "Timings (microseconds): count=5 curr=1000"])
    assert android.parse_log(text)["ops_by_type"] == {
        "CONV_2D": {"avg_ms": 0.75, "percent": 75.0, "count": 2},
        "FULLY_CONNECTED": {"avg_ms": 0.25, "percent": 25.0, "count": 1}}


def test_failed_run_raises_with_the_tool_message():
    with pytest.raises(android.BenchmarkLogError) as error:
        _parse("failed.log")
    message = str(error.value)
    assert message.startswith("failed.log: benchmark_model failed: ")
    assert "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'" in message
    assert "Benchmarking failed." in message


def test_truncated_log_is_a_failure_not_zeros():
    text = "\n".join((DATA / "old_plain.log").read_text().splitlines()[:14])
    with pytest.raises(android.BenchmarkLogError, match="no 'Inference timings in us' line"):
        android.parse_log(text)


def test_parse_command_prints_json(capsys):
    assert android.run(["android", "parse", str(DATA / "info_percentiles.log")]) == 0
    assert json.loads(capsys.readouterr().out) == _parse("info_percentiles.log")


def test_parse_command_on_a_failed_log_exits_nonzero(capsys):
    assert android.run(["android", "parse", str(DATA / "failed.log")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("android: error: ")
    assert "Failed to initialize the interpreter" in err[0]


def test_parse_command_merges_by_the_logged_thread_count(tmp_path, capsys):
    report = tmp_path / "report.json"
    assert android.run(["android", "parse", str(DATA / "logcat.log"), f"--report={report}",
                        "--variant=pruned"]) == 0
    entry = json.loads(report.read_text())["variants"]["pruned"]["android"]
    assert entry["latency_ms"] == {"2": {"p50": 0.117, "p90": None, "mean": 0.11825}}
    assert entry["runs"]["2"]["init_us"] == 3402.0


def _run_args(files, out_dir, *extra):
    return ["android", "run", f"--tflite={files[0]}", f"--benchmark_binary={files[1]}",
            f"--out_dir={out_dir}", *extra]


def test_without_adb_writes_the_script(files, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty_path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "out"
    code = android.run(_run_args(files, out, "--serial=R58M", "--threads=1,4", "--num_runs=20",
                                 "--warmup_runs=2", "--use_xnnpack=false",
                                 "--enable_op_profiling", f"--report={tmp_path / 'r.json'}",
                                 "--variant=pruned"))
    assert code == 0
    script = out / "android_benchmark_tiny.sh"
    assert f"wrote {script}" in capsys.readouterr().out
    assert script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert f"adb -s R58M push {files[1]} /data/local/tmp/benchmark_model\n" in text
    assert "adb -s R58M shell 'chmod +x /data/local/tmp/benchmark_model'\n" in text
    assert f"adb -s R58M push {files[0]} /data/local/tmp/tiny.tflite\n" in text
    for threads in (1, 4):
        assert (f"adb -s R58M shell '/data/local/tmp/benchmark_model "
                f"--graph=/data/local/tmp/tiny.tflite --num_threads={threads} --num_runs=20 "
                "--warmup_runs=2 --use_xnnpack=false --enable_op_profiling=true'") in text
        assert f'log="$here"/tiny_threads{threads}.log' in text
    assert f"parse \"$log\" --report={tmp_path / 'r.json'} --variant=pruned" in text
    assert subprocess.run(["/bin/sh", "-n", str(script)]).returncode == 0


def test_no_device_attached_writes_the_script(files, tmp_path, fake_adb, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_ADB_DEVICES", "R58M\tunauthorized\n")
    assert android.run(_run_args(files, tmp_path / "out")) == 0
    assert "adb devices lists no device" in capsys.readouterr().out
    assert (tmp_path / "out" / "android_benchmark_tiny.sh").exists()
    assert fake_adb.read_text() == "devices\n"  # nothing pushed


def test_fake_adb_run_parses_and_merges_into_the_report(files, tmp_path, fake_adb, capsys):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"variants": {"dense": {"params": 10},
                                               "pruned": {"params": 5, "latency_ms": {}}}}))
    out = tmp_path / "out"
    code = android.run(_run_args(files, out, "--threads=1,4", f"--report={report}",
                                 "--variant=pruned"))
    assert code == 0

    calls = fake_adb.read_text().splitlines()
    assert calls[:4] == ["devices",
                         f"-s emulator-5554 push {files[1]} /data/local/tmp/benchmark_model",
                         "-s emulator-5554 shell chmod +x /data/local/tmp/benchmark_model",
                         f"-s emulator-5554 push {files[0]} /data/local/tmp/tiny.tflite"]
    assert "--num_threads=4 --num_runs=50 --warmup_runs=1 --use_xnnpack=true" in calls[5]
    data = json.loads(report.read_text())
    assert data["variants"]["dense"] == {"params": 10}
    pruned = data["variants"]["pruned"]
    assert pruned["params"] == 5 and pruned["latency_ms"] == {}  # the host entry is untouched
    entry = pruned["android"]
    assert entry["device"] == "emulator-5554"  # the one attached device, named explicitly
    assert entry["benchmark_flags"] == {"num_runs": 50, "warmup_runs": 1, "use_xnnpack": True}
    assert entry["latency_ms"]["4"] == {"p50": 99.98, "p90": None, "mean": 100.123}
    assert entry["runs"]["1"]["first_inference_us"] == 2.95034e+06
    assert (out / "tiny_threads4.log").read_text() == (DATA / "info_percentiles.log").read_text()
    assert json.loads(capsys.readouterr().out) == entry
    assert not [p for d in (tmp_path, out) for p in d.iterdir() if p.name.startswith(".")]


def test_fake_adb_failed_benchmark_exits_nonzero(files, tmp_path, fake_adb, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_ADB_LOG", str(DATA / "failed.log"))
    assert android.run(_run_args(files, tmp_path / "out", "--threads=1")) == 1
    assert "Registration failed." in capsys.readouterr().err
    assert (tmp_path / "out" / "tiny_threads1.log").exists()  # kept for a look


def test_unknown_variant_names_the_known_ones(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"variants": [{"name": "dense"}, {"name": "pruned"}]}))
    with pytest.raises(android.AndroidError, match=r"no variant 'prunned' .*dense.*pruned"):
        android.merge_into_report(report, "prunned", {"latency_ms": {}})
    android.merge_into_report(report, "pruned", {"latency_ms": {"1": {"mean": 1.0}}})
    assert json.loads(report.read_text())["variants"][1]["android"]["latency_ms"] == {
        "1": {"mean": 1.0}}


def test_usage_errors(files, tmp_path, capsys):
    assert android.run(["android"]) == 1
    assert android.run(_run_args(files, tmp_path, "--report=r.json")) == 1
    assert "--variant=NAME" in capsys.readouterr().err
    assert android.run(["android", "run", f"--tflite={tmp_path / 'nope.tflite'}",
                        f"--benchmark_binary={files[1]}"]) == 1
    assert "nope.tflite: file not found" in capsys.readouterr().err


def test_several_devices_need_a_serial(files, tmp_path, fake_adb, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_ADB_DEVICES", "A1\tdevice\nB2\tdevice\n")
    assert android.run(_run_args(files, tmp_path)) == 1
    assert "several devices attached (['A1', 'B2']); pick one with --serial" in \
        capsys.readouterr().err
    assert android.run(_run_args(files, tmp_path, "--serial=C3")) == 1
    assert "--serial=C3 is not attached" in capsys.readouterr().err


def test_taskset_prefixes_the_device_command(files):
    plan = android.Plan(files[0], files[1], "S", (1,), {"num_runs": 5}, taskset="f0")
    assert plan.benchmark_command(1) == [
        "adb", "-s", "S", "shell", "taskset f0 /data/local/tmp/benchmark_model "
        "--graph=/data/local/tmp/tiny.tflite --num_threads=1 --num_runs=5"]


def test_unreadable_summary_header_is_reported():
    text = "\n".join([
        "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4",
        "Operator-wise Profiling Info for Regular Benchmark Runs:",
        "============================== Summary by node type ==============================",
        "node type, count, avg_ms", "CONV_2D, 1, 0.5"])
    with pytest.raises(android.BenchmarkLogError, match="no \\[node type\\] or \\[avg ms\\]"):
        android.parse_log(text)
