"""Host latency profile of a ``.tflite`` model under LiteRT, per thread count.

A profile loads the model with ``ai_edge_litert``, feeds one random batch-1
input of the model's own dtype and shape, warms up, then times ``invoke()``
until both a minimum number of runs and a minimum time are reached, and
reports p50, p90, mean and std in milliseconds for each thread count.

The *edge profile* approximates one phone core: batch 1, one thread, the
calling thread pinned to one CPU with ``os.sched_setaffinity`` (the previous
affinity is restored afterwards), XNNPACK on. ``use_xnnpack=False`` selects
LiteRT's builtin kernels instead.

Memory: ``peak_rss_mb`` is the process's peak resident set size, read from
``VmHWM`` in ``/proc/self/status`` (Linux), else from
``resource.getrusage(RUSAGE_SELF).ru_maxrss``. It is a process-wide high-water
mark: it includes TensorFlow and anything else the process loaded before, and
it never goes down, so it is an upper bound on the model's footprint, not the
footprint itself. ``rss_before_mb`` (current RSS before the first load; NaN
where ``/proc`` is missing) is reported beside it; profile in a fresh process
for a comparable figure.

Example:
  >>> import pipeline
  >>> from pipeline import profile
  >>> result = profile.profile_tflite("model.tflite", profile.ProfileConfig(threads=(1, 2)))
  >>> result.to_dict()["latency_ms"]["1"]  # {"p50": ..., "p90": ..., "mean": ...}
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from pipeline.errors import PruningError

# Bytes 4..8 of every TFLite flatbuffer: its file identifier.
_TFLITE_IDENTIFIER = b"TFL3"
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
_INT_DTYPES = (np.uint8, np.int8, np.int16)


class ProfileError(PruningError):
    """A model cannot be profiled: missing file, not a .tflite, unsupported input."""


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
    """How to profile.

    Attributes:
      threads: the thread counts to measure, in order.
      min_runs: time at least this many runs per thread count.
      min_secs: and keep running until this many seconds have passed.
      warmup_runs: untimed runs after loading (first-run allocations, caches).
      use_xnnpack: False loads with BUILTIN_WITHOUT_DEFAULT_DELEGATES.
      pin_single_thread: pin 1-thread runs to one CPU (the edge profile).
      seed: of the random input.
    """

    threads: tuple[int, ...] = (1, 2)
    min_runs: int = 30
    min_secs: float = 1.0
    warmup_runs: int = 5
    use_xnnpack: bool = True
    pin_single_thread: bool = True
    seed: int = 0

    def __post_init__(self):
        threads = tuple(int(t) for t in self.threads)
        if not threads or min(threads) < 1:
            raise ProfileError(f"threads={self.threads!r}: give one or more counts >= 1, e.g. (1, 2)")
        if self.min_runs < 1 or self.min_secs < 0 or self.warmup_runs < 0:
            raise ProfileError(
                f"min_runs={self.min_runs}, min_secs={self.min_secs}, warmup_runs={self.warmup_runs}: "
                "min_runs must be >= 1, min_secs and warmup_runs >= 0")
        object.__setattr__(self, "threads", threads)


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Statistics of the timed runs at one thread count, in milliseconds.

    ``pinned_cpu`` is the CPU the runs were pinned to, or None when unpinned.
    """

    threads: int
    count: int
    p50_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    pinned_cpu: int | None = None

    @classmethod
    def from_times(cls, times_ms: Sequence[float], threads: int,
                   pinned_cpu: int | None = None) -> "LatencyStats":
        """Summarises per-run times (ms); raises ProfileError on an empty list."""
        times = np.asarray(times_ms, dtype=np.float64)
        if times.size == 0:
            raise ProfileError(f"no timed runs at {threads} thread(s); set min_runs >= 1")
        p50, p90 = np.percentile(times, [50, 90])
        return cls(threads, int(times.size), float(p50), float(p90), float(times.mean()),
                   float(times.std()), float(times.min()), float(times.max()), pinned_cpu)

    def to_dict(self) -> dict:
        """The report's per-thread shape: ``{"p50", "p90", "mean"}`` in ms."""
        return {"p50": self.p50_ms, "p90": self.p90_ms, "mean": self.mean_ms}


@dataclasses.dataclass(frozen=True)
class Profile:
    """What :func:`profile_tflite` measured.

    Attributes:
      tflite: the model path.
      use_xnnpack: whether XNNPACK was on.
      load_ms: interpreter construction plus ``allocate_tensors`` (which
        applies XNNPACK) at the first thread count; later loads hit a warm
        file cache.
      peak_rss_mb: process-wide peak RSS after profiling (see module doc).
      rss_before_mb: RSS before the first load (NaN where unknown).
      memory_source: ``"VmHWM"`` or ``"ru_maxrss"``.
      latencies: one :class:`LatencyStats` per thread count, in order.
    """

    tflite: str
    use_xnnpack: bool
    load_ms: float
    peak_rss_mb: float
    rss_before_mb: float
    memory_source: str
    latencies: tuple[LatencyStats, ...]

    def latency(self, threads: int) -> LatencyStats:
        """The statistics at ``threads``; KeyError if that count was not profiled."""
        for stats in self.latencies:
            if stats.threads == threads:
                return stats
        raise KeyError(f"{threads} threads not profiled; have {[s.threads for s in self.latencies]}")

    def to_dict(self) -> dict:
        """JSON-ready dict; ``latency_ms`` maps ``"<threads>"`` to ``{"p50", "p90", "mean"}``."""
        rss_before = None if np.isnan(self.rss_before_mb) else self.rss_before_mb
        return {
            "tflite": self.tflite, "xnnpack": self.use_xnnpack, "load_ms": self.load_ms,
            "peak_rss_mb": self.peak_rss_mb, "rss_before_mb": rss_before,
            "memory_source": self.memory_source,
            "latency_ms": {str(s.threads): s.to_dict() for s in self.latencies},
            "latency_detail": {str(s.threads): {"std": s.std_ms, "min": s.min_ms, "max": s.max_ms,
                                                "count": s.count, "pinned_cpu": s.pinned_cpu}
                               for s in self.latencies},
        }


def check_tflite(path) -> Path:
    """Returns ``path`` as a Path if it is a readable TFLite flatbuffer.

    Raises:
      ProfileError: the file is missing or is not a .tflite (wrong identifier).
    """
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"{path}: file not found; pass the path of an existing .tflite model")
    with path.open("rb") as f:
        head = f.read(8)
    if head[4:8] != _TFLITE_IDENTIFIER:
        raise ProfileError(f"{path}: not a TFLite model (no 'TFL3' identifier); "
                           "pass a file written by tf.lite.TFLiteConverter")
    return path


def random_input(detail: dict, rng: np.random.Generator) -> np.ndarray:
    """A random array for one input tensor: full range for 8/16-bit ints, [-1, 1) for floats.

    Raises:
      ProfileError: the dtype is neither a float nor an 8/16-bit integer.
    """
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(d) for d in detail["shape"])
    if dtype.type in _FLOAT_DTYPES:
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype.type in _INT_DTYPES:
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    raise ProfileError(f"input '{detail.get('name')}' has dtype {dtype}; the profiler feeds "
                       "uint8/int8/int16/float inputs only, so profile a model with image inputs")


class Session:
    """One loaded interpreter with random batch-1 inputs set, ready to be timed.

    Example:
      >>> session = Session("model.tflite", threads=1)
      >>> session.warm_up(3); session.run_ms()
    """

    def __init__(self, path, threads: int, use_xnnpack: bool = True, seed: int = 0):
        self.path = check_tflite(path)
        self.threads = threads
        resolver = (OpResolverType.AUTO if use_xnnpack
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        start = time.perf_counter()
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=threads,
                                            experimental_op_resolver_type=resolver)
            _resize_to_batch_one(self._interpreter)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ProfileError(f"{self.path}: LiteRT cannot load it ({e}); re-export it with the "
                               "pipeline's TFLite converter") from e
        self.load_ms = (time.perf_counter() - start) * 1e3
        rng = np.random.default_rng(seed)
        # Inputs are set once: per-run copies would be timed as inference.
        for detail in self._interpreter.get_input_details():
            self._interpreter.set_tensor(detail["index"], random_input(detail, rng))

    def warm_up(self, runs: int) -> None:
        """Untimed runs: the first ones pay for lazy allocations and cold caches."""
        for _ in range(runs):
            self._interpreter.invoke()

    def run_ms(self) -> float:
        """Times one ``invoke()`` in milliseconds."""
        start = time.perf_counter_ns()
        self._interpreter.invoke()
        return (time.perf_counter_ns() - start) / 1e6


def _resize_to_batch_one(interpreter: Interpreter) -> None:
    for detail in interpreter.get_input_details():
        signature = detail.get("shape_signature", detail["shape"])
        if any(int(d) < 0 for d in signature[1:]):
            raise ProfileError(f"input '{detail['name']}' has a dynamic non-batch shape "
                               f"{list(signature)}; export the model with a fixed input shape")
        if int(detail["shape"][0]) != 1:
            interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]])


def time_interleaved(sessions: Sequence, min_runs: int, min_secs: float) -> list[np.ndarray]:
    """Times sessions round-robin, one run each per round, so machine noise hits all alike.

    Rounds continue until there are at least ``min_runs`` of them and they
    took at least ``min_secs`` per session (for one session: plain
    min-runs-and-min-time).

    Args:
      sessions: objects with a ``run_ms()`` method, such as :class:`Session`.
      min_runs: minimum number of rounds.
      min_secs: minimum seconds per session.

    Returns:
      One array of per-run milliseconds per session, all the same length.
    """
    times: list[list[float]] = [[] for _ in sessions]
    budget = min_secs * len(sessions)
    start = time.perf_counter()
    while len(times[0]) < min_runs or time.perf_counter() - start < budget:
        for session, record in zip(sessions, times):
            record.append(session.run_ms())
    return [np.asarray(record) for record in times]


@contextlib.contextmanager
def pinned_to_one_cpu() -> Iterator[int | None]:
    """Pins the calling thread to one CPU it may run on, restoring its affinity on exit.

    Yields:
      The CPU number, or None where ``os.sched_setaffinity`` does not exist.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    previous = os.sched_getaffinity(0)
    # The highest allowed CPU: CPU 0 usually takes more of the interrupts.
    cpu = max(previous)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, previous)


def placement(threads: int, pin_single_thread: bool = True):
    """The edge profile's pinning for 1 thread; a no-op context (yielding None) otherwise."""
    if threads == 1 and pin_single_thread:
        return pinned_to_one_cpu()
    return contextlib.nullcontext(None)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # the value is in kB
    except OSError:
        pass
    return None


def peak_rss_mb() -> tuple[float, str]:
    """The process's peak resident memory in MB and where it was read (see module doc)."""
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kB on Linux but in bytes on macOS.
    return (maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024.0), "ru_maxrss"


def profile_tflite(path, config: ProfileConfig = ProfileConfig()) -> Profile:
    """Profiles one ``.tflite`` model at each of ``config.threads``.

    Args:
      path: the ``.tflite`` file.
      config: counts, times, threads and XNNPACK choice; the defaults are the
        edge profile at 1 and 2 threads, 30 runs and 1 s minimum each.

    Returns:
      A frozen :class:`Profile`; ``profile.to_dict()`` is JSON-ready.

    Raises:
      ProfileError: the file is missing, not a TFLite model, cannot be
        loaded, or has inputs the profiler cannot generate.

    Example:
      >>> p = profile_tflite("model.tflite", ProfileConfig(threads=(1,), min_runs=50))
      >>> p.latency(1).p50_ms
    """
    path = check_tflite(path)
    rss_before = _status_mb("VmRSS")
    stats, load_ms = [], None
    for threads in config.threads:
        with placement(threads, config.pin_single_thread) as cpu:
            session = Session(path, threads, config.use_xnnpack, config.seed)
            session.warm_up(config.warmup_runs)
            (times,) = time_interleaved([session], config.min_runs, config.min_secs)
        load_ms = session.load_ms if load_ms is None else load_ms
        stats.append(LatencyStats.from_times(times, threads, cpu))
        del session  # free the interpreter before loading the next one
    peak, source = peak_rss_mb()
    return Profile(str(path), config.use_xnnpack, load_ms, peak,
                   float("nan") if rss_before is None else rss_before, source, tuple(stats))
