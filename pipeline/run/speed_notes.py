"""What a compressed variant measurably gains over its dense reference: size, latency, accuracy.

Sparse and quantized variants are compared with the dense float variant they
derive from (``Variant.reference``), using only numbers measured in this run:
the two files' sizes, their LiteRT latencies (p50 per thread count, from the
evaluate stage), their test accuracies and how many kernels the file stores
sparse. A variant whose p50 is not at least 5% below the reference's is
reported as no faster on this CPU.

Example:
  >>> compare("pruned_2of4", measured["pruned_2of4"], "tflite/pruned_2of4.tflite",
  ...         "pruned_fp32", measured["pruned_fp32"], "tflite/pruned_fp32.tflite")
  ['file 54.1 KiB, 68% of pruned_fp32 (80.0 KiB)', 'no faster than pruned_fp32 ...']
"""
from __future__ import annotations

import os
import platform

from pipeline.export import flatbuffer as tflite_weights
from pipeline.run.results import Measurement

FASTER = 0.95  # p50 ratio below which a variant counts as faster


def compare(name: str, result: Measurement, path: str, reference: str,
            ref_result: Measurement, ref_path: str) -> list[str]:
    """Notes on ``name`` against ``reference`` (see the module doc).

    Args:
      name: the variant.
      result: its :class:`pipeline.run.results.Measurement`.
      path: its ``.tflite``.
      reference: the dense variant it derives from.
      ref_result: the reference's measurement.
      ref_path: the reference's ``.tflite``.

    Returns:
      One note a line: size, accuracy, latency per thread count, sparse kernels.
    """
    size, ref_size = os.path.getsize(path), os.path.getsize(ref_path)
    notes = [f"file {size / 1024:.1f} KiB, {size / ref_size:.0%} of {reference} "
             f"({ref_size / 1024:.1f} KiB)",
             f"test accuracy {result.accuracy:.4f} vs {reference} {ref_result.accuracy:.4f}"]
    latency, ref_latency = result.latency_ms, ref_result.latency_ms
    shared = sorted(set(latency) & set(ref_latency), key=int)
    if not shared:
        notes.append("latency not measured (evaluate.latency_threads is empty)")
    for threads in shared:
        mine, theirs = latency[threads]["p50"], ref_latency[threads]["p50"]
        if mine < FASTER * theirs:
            notes.append(f"{theirs / mine:.2f}x faster than {reference} at {threads} thread(s): "
                         f"p50 {mine:.3f} ms vs {theirs:.3f} ms")
        else:
            notes.append(f"no faster than {reference} on this CPU at {threads} thread(s): "
                         f"p50 {mine:.3f} ms vs {theirs:.3f} ms")
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
