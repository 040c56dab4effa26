"""Timing on this host for latency-targeted pruning: single-layer models and whole models.

Everything is timed in the edge profile of :mod:`pipeline.litert.timing`: batch 1,
one thread, the calling thread pinned to one CPU, XNNPACK on. Models that are
compared are loaded side by side and timed in alternating blocks of runs
(:func:`time_files`), so load that drifts during the runs hits them alike,
while each block runs with its own weights in the caches.

Every figure here is the fastest of the timed runs, not the median: on a
machine shared with other jobs, a run preempted by the scheduler takes 2-3x
longer, and such runs made the median of the same small model swing between
2.0 and 6.1 ms here while its fastest runs stayed within 1.96-2.01 ms (and
with four jobs on the CPU even the 10th percentile of MobileNetV2 swung
between 3.4 and 11.5 ms). The fastest run is the time without interference;
on a quiet machine it sits a few percent below the median.

Example:
  >>> timer = ModelTimer(model)
  >>> timer.compare(pruned)  # Comparison(full_ms=3.1, pruned_ms=1.6, ratio=0.52)
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import re
import shutil
import tempfile
from typing import Sequence

import numpy as np
import tensorflow as tf

from pipeline.errors import PruningError
from pipeline.pruning.families import family_of


BLOCKS = 3  # alternating blocks per timed file (see time_files)


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long to time: single-layer table points, and whole models.

    Attributes:
      point_runs: timed runs of each table point (all points of a layer are
        timed round-robin).
      point_secs: and at least this many seconds per point.
      model_runs: timed runs of each whole model compared.
      model_secs: and at least this many seconds per model.
      warmup_runs: untimed runs after loading.
    """

    point_runs: int = 20
    point_secs: float = 0.02
    model_runs: int = 30
    model_secs: float = 0.5
    warmup_runs: int = 3


def host_device() -> str:
    """A file-name-safe name for this host's edge profile: CPU model, LiteRT version, 1 thread."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1] for l in f if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        litert = importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        litert = "unknown"
    text = f"host-{platform.machine()}-{cpu}-litert{litert}-1thread-xnnpack"
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def to_tflite(model) -> bytes:
    """Plain float32 conversion (the ``pruned_fp32`` export's, without the RGB front)."""
    try:
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()
    except Exception as e:  # the converter raises many types; all mean "cannot convert"
        raise PruningError(f"TFLite cannot convert model '{model.name}' for timing: {e}") from e


def single_layer_model(node, handler, n_in: int, n_out: int):
    """A one-layer model of ``node``'s Keras: its layer narrowed to ``n_in`` -> ``n_out`` channels.

    The layer's config is edited by its handler, exactly as the rebuild does,
    so activations fused into the layer stay fused.
    """
    config = node.layer.get_config()
    handler.edit_config(config, node, [n_in], [n_out])
    config["name"] = "op"
    layer = type(node.layer).from_config(config)
    return family_of(node.layer).one_layer_model(layer, tuple(node.in_shapes[0][:-1]) + (n_in,))


def time_files(paths: Sequence[str], timing: Timing, runs: int, secs: float) -> list[np.ndarray]:
    """Per-run milliseconds of each file, timed in alternating blocks in the pinned 1-thread profile.

    Each of ``BLOCKS`` rounds warms every model up and times it ``runs / BLOCKS``
    times in a row (and ``secs / BLOCKS`` seconds at least). Alternating single
    runs, as :func:`pipeline.litert.timing.time_interleaved` does, evicts each model's
    weights from the caches for the other: two copies of MobileNetV2 timed that
    way measured 7.7 and 4.5 ms, where each alone takes 3.2-3.5 ms.
    """
    from pipeline.litert import timing as profile  # noqa: PLC0415  (LiteRT only when timing)

    with profile.pinned_to_one_cpu():
        sessions = [profile.Session(p, threads=1) for p in paths]
        times: list[list[np.ndarray]] = [[] for _ in sessions]
        for _ in range(BLOCKS):
            for session, record in zip(sessions, times):
                session.warm_up(timing.warmup_runs)
                (block,) = profile.time_interleaved([session], -(-runs // BLOCKS), secs / BLOCKS)
                record.append(block)
    del sessions
    return [np.concatenate(record) for record in times]


def low(times: np.ndarray) -> float:
    """The figure reported for a series of runs: the fastest (see the module doc)."""
    return float(np.min(times))


def time_points(blobs: Sequence[bytes], timing: Timing = Timing()) -> list[float]:
    """Latency (ms, :func:`low`) of each ``.tflite`` flatbuffer, all timed round-robin."""
    with tempfile.TemporaryDirectory(prefix="latency_points_") as directory:
        paths = [_write(directory, f"p{i}.tflite", b) for i, b in enumerate(blobs)]
        times = time_files(paths, timing, timing.point_runs, timing.point_secs)
    return [low(t) for t in times]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A pruned model timed against its original (ms, :func:`low`) and pruned / full."""

    full_ms: float
    pruned_ms: float
    ratio: float


class ModelTimer:
    """Times pruned variants of one model against it, interleaved.

    Args:
      model: the original model, either Keras (converted once).
      timing: run counts.
    """

    def __init__(self, model, timing: Timing = Timing()):
        self.timing = timing
        self._dir = tempfile.mkdtemp(prefix="latency_")
        self._full = _write(self._dir, "full.tflite", to_tflite(model))

    def full_ms(self) -> float:
        """The original model's latency (ms, :func:`low`)."""
        (times,) = time_files([self._full], self.timing, self.timing.model_runs,
                              self.timing.model_secs)
        return low(times)

    def compare(self, pruned) -> Comparison:
        """Times ``pruned`` and the original round-robin.

        Returns:
          Their latencies (:func:`low`) and their ratio.
        """
        path = _write(self._dir, "pruned.tflite", to_tflite(pruned))
        full, mine = time_files([self._full, path], self.timing, self.timing.model_runs,
                                self.timing.model_secs)
        full_ms, pruned_ms = low(full), low(mine)
        return Comparison(full_ms, pruned_ms, pruned_ms / full_ms)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def _write(directory: str, name: str, blob: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(blob)
    return path
