"""What a compressed variant measurably gains over its dense reference: size, latency, accuracy.

Sparse and quantized variants are compared with the dense float variant they
derive from (``Variant.reference``), using only numbers measured in this run:
the two files' sizes, their test accuracies, how many kernels the file stores
sparse, and their latencies timed side by side (:func:`time_paired`).

A speed claim needs paired, interleaved, repeated timings that separate the
two files: :func:`time_paired` runs :func:`pipeline.litert.ab.compare` on the
reference and the variant (each repeat reloads both and alternates their
runs, so machine load hits both alike) and keeps, per thread count, the
reference's p50 over the variant's in each repeat. The variant is called
faster only when every repeat's ratio is above ``1 + MARGIN``, slower only
when every one is below ``1 / (1 + MARGIN)``; otherwise the note says "no
measurable difference" and gives both p50s with their spread over the
repeats. With identical files and ``REPEATS`` = 7, chance alone would put all
seven ratios on one side of 1 once in 64 runs, and the margin cuts that
much further: here (2 shared cores, the quick run's 28x28 VGG, 0.1 s) one
file against itself gave ratios within 0.96-1.03, 2:4 against fp32 (the same
dense kernels after loading) 0.97-1.04, int8 against fp32 3.38-3.53, and a
comparison took under 1 s.

Example:
  >>> paired = time_paired("tflite/pruned_2of4.tflite", "tflite/pruned_fp32.tflite", (1,), 0.5)
  >>> compare("pruned_2of4", measured["pruned_2of4"], "tflite/pruned_2of4.tflite",
  ...         "pruned_fp32", measured["pruned_fp32"], "tflite/pruned_fp32.tflite",
  ...         PairedTiming("pruned_fp32", REPEATS, paired))
  ['file 54.1 KiB, 68% of pruned_fp32 (80.0 KiB)', ..., 'no measurable difference ...']
"""
from __future__ import annotations

import os
import platform
from typing import Sequence

from pipeline.export import flatbuffer as tflite_weights
from pipeline.litert import ab
from pipeline.litert import timing
from pipeline.run.results import Measurement, PairedTiming

REPEATS = 7  # paired repeats per comparison
MARGIN = 0.02  # every paired ratio must clear 1 by this much for a speed claim


def time_paired(path: str, ref_path: str, threads: Sequence[int], min_secs: float,
                repeats: int = REPEATS) -> dict:
    """Times ``path`` against ``ref_path``, interleaved, ``repeats`` times per thread count.

    Args:
      path: the variant's ``.tflite``.
      ref_path: its reference's ``.tflite``.
      threads: thread counts (1-thread runs pinned to one CPU).
      min_secs: seconds of timing per file and thread count, spread over the repeats.
      repeats: independent repeats.

    Returns:
      :class:`pipeline.run.results.PairedTiming`'s ``latency`` (``{"<threads>": ...}``).
    """
    config = timing.ProfileConfig(threads=tuple(threads), min_secs=min_secs / repeats)
    result = ab.compare([ref_path, path], tuple(threads), repeats, config)
    reference, variant = result.models
    paired = {}
    for mine, theirs in zip(variant.cells, reference.cells):
        paired[str(mine.threads)] = {
            "speedup": mine.speedup, "speedup_min": mine.speedup_range[0],
            "speedup_max": mine.speedup_range[1], "p50_ms": mine.p50_ms,
            "p50_range_ms": list(mine.p50_range_ms), "reference_p50_ms": theirs.p50_ms,
            "reference_p50_range_ms": list(theirs.p50_range_ms)}
    return paired


def verdict(speedup_min: float, speedup_max: float) -> str | None:
    """``"faster"``, ``"slower"`` or None (no measurable difference), from the paired ratios' range.

    Example:
      >>> verdict(1.05, 1.12), verdict(0.97, 1.04), verdict(0.80, 0.90)
      ('faster', None, 'slower')
    """
    if speedup_min > 1 + MARGIN:
        return "faster"
    if speedup_max < 1 / (1 + MARGIN):
        return "slower"
    return None


def latency_note(reference: str, threads: str, cell: dict, repeats: int) -> str:
    """One thread count's latency note (see the module doc for when it claims a difference)."""
    speedup, low, high = cell["speedup"], cell["speedup_min"], cell["speedup_max"]
    mine, theirs = cell["p50_ms"], cell["reference_p50_ms"]
    (mine_lo, mine_hi), (theirs_lo, theirs_hi) = cell["p50_range_ms"], cell["reference_p50_range_ms"]
    figures = (f"p50 {mine:.3f} ms ({mine_lo:.3f}-{mine_hi:.3f}) vs {theirs:.3f} ms "
               f"({theirs_lo:.3f}-{theirs_hi:.3f}); {reference}'s p50 over this one's "
               f"{low:.2f}-{high:.2f} over {repeats} interleaved repeats")
    found = verdict(low, high)
    if found == "faster":
        return f"{speedup:.2f}x faster than {reference} at {threads} thread(s): {figures}"
    if found == "slower":
        return f"{1 / speedup:.2f}x slower than {reference} at {threads} thread(s): {figures}"
    return (f"no measurable difference (neither faster nor slower than {reference}) at "
            f"{threads} thread(s): {figures}")


def compare(name: str, result: Measurement, path: str, reference: str,
            ref_result: Measurement, ref_path: str, paired: PairedTiming | None) -> list[str]:
    """Notes on ``name`` against ``reference`` (see the module doc).

    Args:
      name: the variant.
      result: its :class:`pipeline.run.results.Measurement`.
      path: its ``.tflite``.
      reference: the dense variant it derives from.
      ref_result: the reference's measurement.
      ref_path: the reference's ``.tflite``.
      paired: the two timed side by side (:func:`time_paired`), None when
        latency is not measured.

    Returns:
      One note a line: size, accuracy, latency per thread count, sparse kernels.
    """
    size, ref_size = os.path.getsize(path), os.path.getsize(ref_path)
    notes = [f"file {size / 1024:.1f} KiB, {size / ref_size:.0%} of {reference} "
             f"({ref_size / 1024:.1f} KiB)",
             f"test accuracy {result.accuracy:.4f} vs {reference} {ref_result.accuracy:.4f}"]
    if paired is None or not paired.latency:
        notes.append("latency not measured (evaluate.latency_threads is empty)")
    else:
        for threads in sorted(paired.latency, key=int):
            notes.append(latency_note(reference, threads, paired.latency[threads],
                                      paired.repeats))
    kernels = tflite_weights.read_kernels(path)
    for op, note in (("CONV_2D", "LiteRT densifies sparse conv weights at load" + _cpu_note()),
                     ("FULLY_CONNECTED", "a sparse FULLY_CONNECTED selects TFLite's built-in "
                      "sparse kernel")):
        sparse = [k for k in kernels if k.op == op and k.sparse_format]
        if sparse:
            formats = ", ".join(sorted({k.sparse_format for k in sparse}))
            total = sum(k.op == op for k in kernels)
            notes.append(f"{len(sparse)} of {total} {op} kernels stored sparse ({formats}): {note}")
    return notes


def _cpu_note() -> str:
    """On x86 with AVX (read from /proc/cpuinfo), XNNPACK's sparse inference is off."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return ""
    try:
        with open("/proc/cpuinfo") as f:
            avx = " avx" in f.read()
    except OSError:
        return ""
    return ("; this x86 CPU has AVX, where XNNPACK's sparse inference is disabled (per XNNPACK's "
            "documentation), so no conv speed-up is expected here" if avx else "")
