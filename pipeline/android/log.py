"""Parsing the output of TFLite's ``benchmark_model`` tool.

Handles the three shapes its output takes (see shared/notes/benchmark_model.md):
plain lines (older builds, stderr), ``INFO:``-prefixed lines (newer builds,
stdout) and logcat lines (``I tflite  : ...``, the APK variant). Lines are
matched by content, not position; numbers may be in exponent form. The
operator summary is read from the regular-run section by its header names,
with or without the ``[start]`` column. A failed run (``ERROR:`` lines and
no timings line) raises instead of returning zeros.
"""
from __future__ import annotations

import math
import re

from pipeline.errors import PruningError


_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)"
_LOGCAT = re.compile(r"^.*?\b([VDIWEF]) tflite\s*: ?")
_LEVEL = re.compile(r"^(INFO|VERBOSE|WARNING|ERROR): ")
_TIMINGS = re.compile(rf"Inference timings in us: Init: {_NUMBER}, First inference: {_NUMBER}, "
                      rf"Warmup \(avg\): {_NUMBER}, Inference \(avg\): {_NUMBER}")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory "
                     rf"footprint) \(MB\): init={_NUMBER} overall={_NUMBER}")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUMBER}")
_SIZE = re.compile(rf"The input model file size \(MB\): {_NUMBER}")
_THREADS = re.compile(r"(?:Num threads|#threads used for CPU inference): \[(\d+)\]")
_REGULAR_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs"
_INIT_SECTION = "Profiling Info for Benchmark Initialization"


class BenchmarkLogError(PruningError):
    """A benchmark_model log reports a failure or is not benchmark_model output."""


def _number(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None  # "nan" (e.g. no warm-up) is not a timing


def _clean_lines(text: str) -> list[tuple[bool, str]]:
    """Each line without its logcat or level prefix, with whether it was an error line."""
    lines = []
    for raw in text.splitlines():
        line, error = raw, False
        logcat = _LOGCAT.match(line)
        if logcat:
            line, error = line[logcat.end():], logcat.group(1) in "EF"
        level = _LEVEL.match(line)
        if level:
            line, error = line[level.end():], error or level.group(1) == "ERROR"
        lines.append((error, line))
    return lines


def parse_log(text: str, source: str = "log") -> dict:
    """Reads the figures of one ``benchmark_model`` run from its printed output.

    Args:
      text: the output, in any of the three formats (plain, ``INFO:``, logcat).
      source: a name for the log in error messages, e.g. its path.

    Returns:
      A JSON-ready dict; see the module docstring for its keys. Times are in
      microseconds as printed, ``ops_by_type`` averages in milliseconds.

    Raises:
      BenchmarkLogError: the run failed (``Benchmarking failed``) or there is
        no ``Inference timings in us`` line; the message holds the tool's
        error lines.

    Example:
      >>> parse_log(open("bench.log").read())["inference_avg_us"]
    """
    lines = _clean_lines(text)
    body = "\n".join(line for _, line in lines)
    timings = _TIMINGS.search(body)
    if timings is None or "Benchmarking failed" in body:
        errors = [line.strip() for error, line in lines if error and line.strip()]
        detail = ("; ".join(errors) if errors else
                  "no 'Inference timings in us' line: the log is truncated or is not "
                  "benchmark_model output")
        raise BenchmarkLogError(f"{source}: benchmark_model failed: {detail}")
    memory = _MEMORY.search(body)
    result = {
        "init_us": _number(timings.group(1)), "first_inference_us": _number(timings.group(2)),
        "warmup_avg_us": _number(timings.group(3)), "inference_avg_us": _number(timings.group(4)),
        "memory_overall_mb": _number(memory.group(2)) if memory else None,
    }
    for key, pattern in (("model_size_mb", _SIZE), ("peak_memory_mb", _PEAK)):
        found = pattern.search(body)
        if found:
            result[key] = _number(found.group(1))
    threads = _THREADS.search(body)
    if threads:
        result["num_threads"] = int(threads.group(1))
    result.update(_phase_stats([line for _, line in lines]))
    ops = _ops_by_type([line for _, line in lines])
    if ops is not None:
        result["ops_by_type"] = ops
    return result


def _phase_stats(lines: list[str]) -> dict:
    """The ``count=... avg=...`` lines: the first is the warm-up phase, the last the regular runs."""
    stats = []
    for line in lines:
        if line.strip().startswith("count="):
            values = {key: _number(value) for key, value in re.findall(rf"(\w+)={_NUMBER}", line)}
            values["count"] = int(values["count"])
            stats.append(values)
    if not stats:
        return {}
    phases = {"inference_stats_us": stats[-1]}
    if len(stats) > 1:
        phases["warmup_stats_us"] = stats[0]
    return phases


def _ops_by_type(lines: list[str]) -> dict | None:
    """The regular runs' "Summary by node type" table, read by its header names."""
    start = next((i for i, line in enumerate(lines) if _REGULAR_SECTION in line), None)
    if start is None:
        return None
    # The section ends where the initialization one starts, if that comes later.
    end = next((i for i in range(start, len(lines)) if _INIT_SECTION in lines[i]), len(lines))
    table = next((i for i in range(start, end) if "Summary by node type" in lines[i]), None)
    if table is None or table + 1 >= end:
        return None
    # Header cells such as "[Node type]", "[avg %]" -> "nodetype", "avg%".
    header = [re.sub(r"\s+", "", h).lower() for h in re.findall(r"\[([^\]]*)\]", lines[table + 1])]
    column = {name: header.index(name) for name in header}
    if "nodetype" not in column or "avgms" not in column:
        raise BenchmarkLogError(f"'Summary by node type' header {lines[table + 1].strip()!r} has "
                                "no [node type] or [avg ms] column; is this a CSV profile? "
                                "Rerun with --op_profiling_output_mode=stdout")
    percent = column.get("avg%", column.get("%"))
    count = column.get("count", column.get("timescalled"))
    ops = {}
    for line in lines[table + 2:]:
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        if len(cells) != len(header):
            break  # a blank line or the "Timings (microseconds)" footer ends the table
        row = {"avg_ms": _number(cells[column["avgms"]]),
               "percent": _number(cells[percent].rstrip("%")) if percent is not None else None,
               "count": int(float(cells[count])) if count is not None else None}
        seen = ops.setdefault(cells[column["nodetype"]], row)
        if seen is not row:  # a per-node layout lists a type once per node: add them up
            for key in row:
                seen[key] = None if None in (seen[key], row[key]) else seen[key] + row[key]
    return ops


# ----- adb ------------------------------------------------------------------------------------
