"""On-device latency with TFLite's ``benchmark_model``: parse its logs, drive it over adb.

Two subcommands:
  python -m pipeline.android parse LOG [--report=report.json --variant=NAME]
  python -m pipeline.android run --workdir=RUN --benchmark_binary=PATH [--serial=S] [--threads=1,4]
  python -m pipeline.android run --tflite=M --benchmark_binary=PATH [--serial=S] \\
      [--threads=1,4] [--num_runs=50] [--warmup_runs=1] [--use_xnnpack=true] \\
      [--enable_op_profiling] [--taskset=f0] [--report=report.json --variant=NAME] [--out_dir=DIR]

``parse`` reads a saved ``benchmark_model`` output (plain stderr lines,
``INFO:``-prefixed lines, or logcat lines ``I tflite  : ...``) and prints JSON
with ``init_us``, ``first_inference_us``, ``warmup_avg_us``,
``inference_avg_us`` and ``memory_overall_mb`` (null where absent), plus
``model_size_mb``, ``peak_memory_mb``, ``num_threads``, ``warmup_stats_us``,
``inference_stats_us`` and ``ops_by_type`` (with ``--enable_op_profiling``:
the regular runs' "Summary by node type" table) when the log has them. A
failed run exits 1 with the tool's own error lines on stderr.

``run`` pushes the binary and the model with adb, runs ``benchmark_model`` once
per thread count, saves each output as ``<model>_threads<N>.log`` in
``--out_dir``, parses it and, with ``--report``, merges it into that JSON
report as ``report["variants"][NAME]["android"]`` (a list of variants with a
``"name"`` key works too). With no ``adb`` on PATH or no device attached it
writes the equivalent shell script to ``--out_dir`` instead and exits 0.
``run --workdir=RUN`` does this for every variant a finished run wrote and
adds a device table beside its host figures (:mod:`pipeline.android.workdir`).
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from absl import app, flags

from pipeline import atomic
from pipeline import cli
from pipeline.android import workdir as run_dir
from pipeline.android.log import BenchmarkLogError, parse_log  # noqa: F401  (re-exported)
from pipeline.errors import PruningError
from pipeline.litert.timing import check_tflite

# Own registry: several pipeline CLIs share flag names such as --tflite.
FLAGS = flags.FlagValues()
flags.DEFINE_string("tflite", None, "run: the .tflite model to benchmark.", flag_values=FLAGS)
flags.DEFINE_string("workdir", None, "run: instead of --tflite, every variant a finished run "
                    "wrote (see pipeline/android/workdir.py).", flag_values=FLAGS)
flags.DEFINE_string("benchmark_binary", None, "run: benchmark_model built for the device's ABI.",
                    flag_values=FLAGS)
flags.DEFINE_string("serial", None, "run: adb serial of the device (adb -s).", flag_values=FLAGS)
flags.DEFINE_list("threads", ["1", "4"], "run: comma-separated thread counts.", flag_values=FLAGS)
flags.DEFINE_integer("num_runs", 50, "run: benchmark_model --num_runs.", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_integer("warmup_runs", 1, "run: benchmark_model --warmup_runs.", lower_bound=0,
                     flag_values=FLAGS)
flags.DEFINE_boolean("use_xnnpack", True, "run: benchmark_model --use_xnnpack.", flag_values=FLAGS)
flags.DEFINE_boolean("enable_op_profiling", False, "run: per-operator timings (ops_by_type).",
                     flag_values=FLAGS)
flags.DEFINE_string("taskset", None, "run: CPU mask for taskset on the device, e.g. f0 for the "
                    "big cores of many phones.", flag_values=FLAGS)
flags.DEFINE_string("device_dir", "/data/local/tmp", "run: writable directory on the device.",
                    flag_values=FLAGS)
flags.DEFINE_string("report", None, "Merge the results into this JSON report.", flag_values=FLAGS)
flags.DEFINE_string("variant", None, "The report's variant to merge into (with --report).",
                    flag_values=FLAGS)
flags.DEFINE_string("out_dir", ".", "run: where logs (or the script, without a device) go.",
                    flag_values=FLAGS)

class AndroidError(PruningError):
    """An adb step failed, or the run/report arguments are unusable."""


def _call(command: Sequence[str]) -> tuple[int, str]:
    """Runs one command; returns its exit code and stdout+stderr. The only process spawn here."""
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def attached_devices() -> list[str] | None:
    """Serials that ``adb devices`` lists as ready, or None when adb is not on PATH."""
    if shutil.which("adb") is None:
        return None
    code, output = _call(["adb", "devices"])
    if code != 0:
        return []
    rows = [line.split() for line in output.splitlines()[1:]]  # after "List of devices attached"
    return [row[0] for row in rows if len(row) >= 2 and row[1] == "device"]


def _adb(serial: str | None, *args: str) -> list[str]:
    return ["adb", *(["-s", serial] if serial else []), *args]


@dataclasses.dataclass(frozen=True)
class Plan:
    """The commands of one on-device run: pushes, then one benchmark per thread count.

    Example:
      >>> plan = Plan(Path("m.tflite").resolve(), Path("benchmark_model").resolve(), None,
      ...             (1, 4), {"num_runs": 50, "use_xnnpack": True})
      >>> plan.benchmark_command(1)  # ["adb", "shell", "/data/local/tmp/benchmark_model ..."]
    """

    tflite: Path
    binary: Path
    serial: str | None
    threads: tuple[int, ...]
    benchmark_flags: dict
    taskset: str | None = None
    device_dir: str = "/data/local/tmp"

    @property
    def remote_binary(self) -> str:
        return f"{self.device_dir}/benchmark_model"

    @property
    def remote_model(self) -> str:
        return f"{self.device_dir}/{self.tflite.name}"

    def setup_commands(self) -> list[list[str]]:
        return [_adb(self.serial, "push", str(self.binary), self.remote_binary),
                _adb(self.serial, "shell", "chmod +x " + shlex.quote(self.remote_binary)),
                _adb(self.serial, "push", str(self.tflite), self.remote_model)]

    def benchmark_command(self, threads: int) -> list[str]:
        # adb shell joins its arguments into one device shell line: quote it as one string.
        words = (["taskset", self.taskset] if self.taskset else []) + [
            self.remote_binary, f"--graph={self.remote_model}", f"--num_threads={threads}",
            *(f"--{k}={_flag_text(v)}" for k, v in self.benchmark_flags.items())]
        return _adb(self.serial, "shell", " ".join(shlex.quote(w) for w in words))

    def log_name(self, threads: int) -> str:
        return f"{self.tflite.stem}_threads{threads}.log"


def _flag_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def write_script(plan: Plan, out_dir, report: str | None, variant: str | None) -> Path:
    """Writes the executable shell script that performs ``plan`` and parses its logs.

    Args:
      plan: the commands to run.
      out_dir: where the script goes; it writes its logs next to itself.
      report: a JSON report to merge each parsed log into, or None.
      variant: the report's variant (with ``report``).

    Returns:
      The script's path, ``out_dir/android_benchmark_<model>.sh``.

    Example:
      >>> write_script(plan, ".", "report.json", "pruned")  # then: sh android_benchmark_m.sh
    """
    lines = ["#!/bin/sh",
             f"# On-device benchmark of {plan.tflite.name} with TFLite benchmark_model.",
             "# Written by `python -m pipeline.android run`, which found no adb or no device;",
             "# run it where adb sees the device and `pipeline` imports. Logs go next to it.",
             "set -eu", 'here="$(cd "$(dirname "$0")" && pwd)"']
    lines += [shlex.join(c) for c in plan.setup_commands()]
    merge = (f" --report={shlex.quote(str(Path(report).resolve()))} "
             f"--variant={shlex.quote(variant)}" if report else "")
    for threads in plan.threads:
        lines += [f'log="$here"/{shlex.quote(plan.log_name(threads))}',
                  f'{shlex.join(plan.benchmark_command(threads))} > "$log" 2>&1 '
                  '|| { echo "benchmark_model failed; see $log" >&2; exit 1; }',
                  f'"${{PYTHON:-python3}}" -m pipeline.android parse "$log"{merge}']
    path = Path(out_dir) / f"android_benchmark_{plan.tflite.stem}.sh"
    atomic.write_text(path, "\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def run_on_device(plan: Plan, out_dir) -> dict:
    """Pushes, runs and parses; returns the ``android`` report entry.

    Args:
      plan: the commands; ``plan.serial`` should name the device.
      out_dir: where each run's output is saved as ``<model>_threads<N>.log``.

    Returns:
      ``{"device", "benchmark_flags", "tflite", "latency_ms", "runs"}``;
      ``latency_ms["<threads>"]`` is ``{"p50", "p90", "mean"}`` in ms (p50 from
      the tool's median where printed, p90 always None), ``runs["<threads>"]``
      the :func:`parse_log` result.

    Raises:
      AndroidError: an adb step failed.
      BenchmarkLogError: benchmark_model failed; its log stays in ``out_dir``.
    """
    for command in plan.setup_commands():
        code, output = _call(command)
        if code != 0:
            raise AndroidError(f"`{shlex.join(command)}` failed ({output.strip()}); "
                               "check the device with `adb devices` and the paths")
    runs = {}
    for threads in plan.threads:
        _, output = _call(plan.benchmark_command(threads))
        log = Path(out_dir) / plan.log_name(threads)
        atomic.write_text(log, output)
        runs[str(threads)] = parse_log(output, source=str(log))
    return _entry(runs, device=plan.serial, benchmark_flags=plan.benchmark_flags,
                  tflite=str(plan.tflite))


def _entry(runs: dict, **fields) -> dict:
    # Same per-thread shape as the host profile; benchmark_model prints no p90.
    latency = {t: {"p50": _median_ms(r), "p90": None, "mean": _ms(r["inference_avg_us"])}
               for t, r in runs.items()}
    return {**fields, "latency_ms": latency, "runs": runs}


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def _median_ms(run: dict) -> float | None:
    return _ms(run.get("inference_stats_us", {}).get("median"))


def merge_into_report(report, variant: str, entry: dict) -> dict:
    """Merges ``entry`` into ``report``'s variant as its ``android`` entry (atomic write).

    Per-thread results are added to those already there; other fields are replaced.
    A missing report file is created with just this variant.

    Args:
      report: the JSON file, ``{"variants": {NAME: {...}}}`` or
        ``{"variants": [{"name": NAME, ...}]}``.
      variant: the variant's name.
      entry: what to merge, e.g. the result of :func:`run_on_device`.

    Returns:
      The whole report as written.

    Raises:
      AndroidError: the report exists but has no such variant, or is not JSON.
    """
    path = Path(report)
    try:
        data = json.loads(path.read_text()) if path.exists() else {"variants": {variant: {}}}
    except json.JSONDecodeError as e:
        raise AndroidError(f"{path}: not valid JSON ({e}); pass the pipeline's report file") from e
    target = _find_variant(data, variant, path)
    android = target.setdefault("android", {})
    for key, value in entry.items():
        if key in ("latency_ms", "runs"):
            android.setdefault(key, {}).update(value)
        else:
            android[key] = value
    atomic.write_text(path, json.dumps(data, indent=2) + "\n")
    return data


def _find_variant(data: dict, variant: str, path: Path) -> dict:
    variants = data.get("variants") if isinstance(data, dict) else None
    if isinstance(variants, dict) and isinstance(variants.get(variant), dict):
        return variants[variant]
    if isinstance(variants, list):
        for item in variants:
            if isinstance(item, dict) and item.get("name") == variant:
                return item
    names = (list(variants) if isinstance(variants, dict) else
             [v.get("name") for v in variants or [] if isinstance(v, dict)])
    raise AndroidError(f"{path}: no variant '{variant}' (variants: {names or 'none'}); "
                       "pass one of those to --variant")


# ----- command line ---------------------------------------------------------------------------

def _parse_command(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        raise AndroidError("usage: python -m pipeline.android parse LOG [--report=R --variant=V]")
    log = Path(argv[1])
    if not log.is_file():
        raise AndroidError(f"{log}: file not found; pass a saved benchmark_model output")
    result = parse_log(log.read_text(errors="replace"), source=str(log))
    if FLAGS.report:
        if "num_threads" not in result:
            raise AndroidError(f"{log}: no 'Num threads: [N]' line, so the thread count is "
                               "unknown; rerun benchmark_model with --num_threads=N")
        merge_into_report(FLAGS.report, FLAGS.variant,
                          _entry({str(result["num_threads"]): result}))
    print(json.dumps(result, indent=2))
    return 0


def _run_command(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        raise AndroidError(f"unexpected arguments {list(argv[1:])}; `run` takes only flags")
    if not FLAGS.benchmark_binary or not Path(FLAGS.benchmark_binary).is_file():
        raise AndroidError(f"--benchmark_binary={FLAGS.benchmark_binary}: file not found; pass "
                           "benchmark_model built for the device (e.g. android_arm64)")
    if bool(FLAGS.tflite) == bool(FLAGS.workdir):
        raise AndroidError("`run` needs one of --tflite=MODEL.tflite (one file) or "
                           "--workdir=RUN (every variant of a finished run)")
    if FLAGS.workdir:
        return _run_workdir(Path(FLAGS.workdir))
    check_tflite(FLAGS.tflite)
    plan = _plan(Path(FLAGS.tflite))
    out_dir = Path(FLAGS.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    devices = attached_devices()
    if not devices:
        script = write_script(plan, out_dir, FLAGS.report, FLAGS.variant)
        reason = "adb is not on PATH" if devices is None else "adb devices lists no device"
        print(f"{reason}; wrote {script}: run it where adb sees the device")
        return 0
    # Name the one device explicitly, so the report records which phone it was.
    entry = run_on_device(dataclasses.replace(plan, serial=_one_device(devices)), out_dir)
    if FLAGS.report:
        merge_into_report(FLAGS.report, FLAGS.variant, entry)
    print(json.dumps(entry, indent=2))
    return 0


def _plan(tflite: Path) -> Plan:
    benchmark_flags = {"num_runs": FLAGS.num_runs, "warmup_runs": FLAGS.warmup_runs,
                       "use_xnnpack": FLAGS.use_xnnpack}
    if FLAGS.enable_op_profiling:
        benchmark_flags["enable_op_profiling"] = True
    return Plan(tflite.resolve(), Path(FLAGS.benchmark_binary).resolve(), FLAGS.serial,
                cli.thread_counts(FLAGS.threads, "1,4"), benchmark_flags, FLAGS.taskset,
                FLAGS.device_dir)


def _run_workdir(workdir: Path) -> int:
    variants = run_dir.finished_variants(workdir)
    devices = attached_devices()
    if not devices:
        (workdir / "android").mkdir(exist_ok=True)
        scripts = [write_script(_plan(path), workdir / "android", str(workdir / "report.json"),
                                name) for name, path in variants]
        reason = "adb is not on PATH" if devices is None else "adb devices lists no device"
        print(f"{reason}; wrote {len(scripts)} scripts to {workdir / 'android'}: run them "
              "where adb sees the device")
        return 0
    serial = _one_device(devices)
    table = run_dir.run_workdir(
        workdir, variants, lambda path: dataclasses.replace(_plan(path), serial=serial),
        run_on_device, merge_into_report)
    print(json.dumps(table, indent=2))
    return 0


def _one_device(devices: list[str]) -> str:
    if FLAGS.serial and FLAGS.serial not in devices:
        raise AndroidError(f"--serial={FLAGS.serial} is not attached (attached: {devices})")
    if not FLAGS.serial and len(devices) > 1:
        raise AndroidError(f"several devices attached ({devices}); pick one with --serial")
    return FLAGS.serial or devices[0]


def main(argv: Sequence[str]) -> int:
    """Dispatches ``parse`` or ``run`` with the parsed :data:`FLAGS`; returns the exit code.

    Example:
      python -m pipeline.android parse benchmark.log
    """
    commands = {"parse": _parse_command, "run": _run_command}
    if len(argv) < 2 or argv[1] not in commands:
        return _fail("give a subcommand: `parse LOG` or `run --tflite=M --benchmark_binary=B`")
    if FLAGS.report and not FLAGS.variant:
        return _fail(f"--report={FLAGS.report} needs --variant=NAME to say where the results go")
    try:
        return commands[argv[1]](list(argv[1:]))
    except (PruningError, OSError) as e:
        return _fail(str(e))


def _fail(message: str) -> int:
    return cli.fail("android", message)


parse_argv, run = cli.entry_points("android", FLAGS, __doc__, main)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_argv)
