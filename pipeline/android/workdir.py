"""A finished run's files on a phone: every written variant through ``benchmark_model``.

``python -m pipeline.android run --workdir=<run> --benchmark_binary=PATH
[--serial=S] [--threads=1,4]`` reads ``<run>/report.json``, takes each variant
whose status is ``ok`` and whose ``.tflite`` is there, and runs it on the
device at each thread count (:func:`pipeline.android.runner.run_on_device`:
the binary and the file pushed over adb, one ``benchmark_model`` run per
thread count). It writes, beside the host figures the run measured:

* ``<run>/android/<variant>_threads<N>.log``: each run's output;
* ``report.json``: each variant's ``android`` entry, as ``run --report`` merges it;
* ``<run>/android.json``: the device table, one row a variant: the device's
  p50 and mean per thread count beside the host's p50 (LiteRT, this machine);
* ``report.md``: a section "On the device" with that table, replaced on a rerun.

Without adb or a device it writes one script per variant to ``<run>/android/``
instead (each merges its results into ``report.json`` when run) and changes
nothing else.

Example:
  >>> table = run_workdir("workdir/default", finished_variants("workdir/default"), plan_for,
  ...                     runner.run_on_device, runner.merge_into_report)
  >>> table["variants"]["pruned_fp32"]["device_ms"]["1"]["p50"]
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from pipeline import atomic
from pipeline.errors import PruningError

SECTION = "## On the device (benchmark_model)"


class WorkdirReportError(PruningError):
    """The workdir holds no finished run's report, or no written variant."""


def finished_variants(workdir) -> list[tuple[str, Path]]:
    """``(name, .tflite path)`` of each variant the run wrote, in the report's order.

    Raises:
      WorkdirReportError: no readable ``report.json``, or no variant with a file.
    """
    report = Path(workdir) / "report.json"
    try:
        data = json.loads(report.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WorkdirReportError(f"{report}: cannot read the run's report ({e}); pass "
                                 "--workdir=<the workdir of a finished pipeline run>") from e
    found = []
    for variant in data.get("variants", []):
        path = Path(workdir) / str(variant.get("tflite") or "")
        if variant.get("status", "ok") == "ok" and variant.get("tflite") and path.is_file():
            found.append((variant["name"], path))
    if not found:
        raise WorkdirReportError(f"{report} lists no written .tflite variant; run the "
                                 "pipeline with export.variants first")
    return found


def run_workdir(workdir, variants, plan_for: Callable, run_on_device: Callable,
                merge_into_report: Callable) -> dict:
    """Runs every written variant on the device and writes the device table.

    Args:
      workdir: a finished run's workdir.
      variants: its :func:`finished_variants`.
      plan_for: ``plan_for(tflite_path) -> Plan`` (the device, binary and flags set).
      run_on_device: :func:`pipeline.android.runner.run_on_device`.
      merge_into_report: :func:`pipeline.android.runner.merge_into_report`.

    Returns:
      The device table written to ``android.json``.

    Raises:
      AndroidError, BenchmarkLogError: an adb step or a benchmark run failed
        (the logs so far stay in ``<workdir>/android/``; nothing else is written).
    """
    workdir = Path(workdir)
    logs = workdir / "android"
    logs.mkdir(exist_ok=True)
    entries = {name: run_on_device(plan_for(path), logs)
               for name, path in variants}
    report = workdir / "report.json"
    for name, entry in entries.items():
        merge_into_report(report, name, entry)
    table = device_table(entries, json.loads(report.read_text()))
    atomic.write_text(workdir / "android.json", json.dumps(table, indent=2) + "\n")
    markdown = workdir / "report.md"
    if markdown.is_file():
        atomic.write_text(markdown, with_section(markdown.read_text(), table))
    return table


def device_table(entries: dict, report: dict) -> dict:
    """``{"device", "benchmark_flags", "threads", "variants": {name: {...}}}``.

    Each variant holds ``device_ms`` (``{threads: {"p50", "mean"}}`` from
    ``benchmark_model``) and ``host_ms`` (``{threads: p50}`` from the run's
    own LiteRT timing on this machine).
    """
    host = {v["name"]: v.get("latency_ms") or {} for v in report.get("variants", [])}
    first = next(iter(entries.values()))
    threads = sorted({int(t) for e in entries.values() for t in e["latency_ms"]})
    return {
        "device": first.get("device"), "benchmark_flags": first.get("benchmark_flags"),
        "threads": threads,
        "variants": {name: {
            "device_ms": {t: {"p50": s["p50"], "mean": s["mean"]}
                          for t, s in entry["latency_ms"].items()},
            "host_ms": {t: s.get("p50") for t, s in host.get(name, {}).items()},
        } for name, entry in entries.items()},
    }


def with_section(markdown: str, table: dict) -> str:
    """``markdown`` with its device section replaced (or appended) by ``table``'s."""
    head = markdown.split(SECTION)[0].rstrip("\n")
    return head + "\n\n" + section(table)


def section(table: dict) -> str:
    """The report.md section: the device's and the host's p50 per variant."""
    device_threads = [str(t) for t in table["threads"]]
    host_threads = sorted({t for v in table["variants"].values() for t in v["host_ms"]}, key=int)
    header = ([f"device p50, {t} thr (ms)" for t in device_threads]
              + [f"host p50, {t} thr (ms)" for t in host_threads])
    lines = [SECTION, "",
             f"Device `{table['device']}`, `benchmark_model` "
             f"{_flags(table['benchmark_flags'])}; host: this run's LiteRT timing "
             "(`evaluate`). Written by `python -m pipeline.android run --workdir`.", "",
             "| variant | " + " | ".join(header) + " |",
             "|---|" + "---|" * len(header)]
    for name, row in table["variants"].items():
        cells = [_ms(row["device_ms"].get(t, {}).get("p50")) for t in device_threads]
        cells += [_ms(row["host_ms"].get(t)) for t in host_threads]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _flags(flags: dict | None) -> str:
    return " ".join(f"--{k}={v}" for k, v in (flags or {}).items())


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f}"
