"""Side-by-side host latency of several ``.tflite`` models, their runs interleaved.

Run:
  python -m pipeline.litert.ab --tflite=dense.tflite --tflite=pruned.tflite \\
      --threads=1,2 --repeats=3 --json=bench.json

For each repeat and thread count every model is loaded, warmed up and then
timed round-robin (one run of each model per round, the starting model
rotating between repeats), so drifts in machine load hit all models alike.
1-thread runs are pinned to one CPU (the edge profile of
:mod:`pipeline.litert.timing`); ``--nopin`` turns that off.

Each figure in the table is the median over repeats of that repeat's
statistic; the ranges are the min-max of the per-repeat medians, and the
speed-up is the first model's p50 over this model's p50, paired within a
repeat.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from absl import app, flags

from pipeline.litert import timing as profile
from pipeline import atomic
from pipeline import cli
from pipeline.errors import PruningError
from pipeline.litert.timing import LatencyStats, ProfileError

# Own registry: several pipeline CLIs share flag names such as --tflite.
FLAGS = flags.FlagValues()
flags.DEFINE_multi_string("tflite", None, "A .tflite model; repeat the flag for each model. "
                          "The first one is the baseline of the speed-ups.", flag_values=FLAGS)
flags.DEFINE_list("threads", ["1", "2"], "Comma-separated thread counts.", flag_values=FLAGS)
flags.DEFINE_integer("repeats", 3, "Independent repeats (reload, re-time).", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_integer("min_runs", 30, "Minimum timed runs per model, thread count and repeat.",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float("min_secs", 1.0, "Minimum seconds of timing per model, thread count and "
                   "repeat.", lower_bound=0.0, flag_values=FLAGS)
flags.DEFINE_integer("warmup_runs", 5, "Untimed runs after each load.", lower_bound=0,
                     flag_values=FLAGS)
flags.DEFINE_boolean("no_xnnpack", False, "Use LiteRT's builtin kernels instead of XNNPACK.",
                     flag_values=FLAGS)
flags.DEFINE_boolean("pin", True, "Pin 1-thread runs to one CPU.", flag_values=FLAGS)
flags.DEFINE_string("json", None, "Also write the results to this JSON file.", flag_values=FLAGS)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One model at one thread count, summarised over repeats (ms)."""

    threads: int
    p50_ms: float
    p90_ms: float
    mean_ms: float
    p50_range_ms: tuple[float, float]
    speedup: float
    speedup_range: tuple[float, float]
    runs: int


@dataclasses.dataclass(frozen=True)
class ModelResult:
    tflite: str
    cells: tuple[Cell, ...]

    def to_dict(self) -> dict:
        by_threads = {str(c.threads): c for c in self.cells}
        return {
            "tflite": self.tflite,
            "latency_ms": {t: {"p50": c.p50_ms, "p90": c.p90_ms, "mean": c.mean_ms}
                           for t, c in by_threads.items()},
            "p50_range_ms": {t: list(c.p50_range_ms) for t, c in by_threads.items()},
            "speedup": {t: {"value": c.speedup, "min": c.speedup_range[0],
                            "max": c.speedup_range[1]} for t, c in by_threads.items()},
            "runs": {t: c.runs for t, c in by_threads.items()},
        }


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What :func:`compare` measured: one :class:`ModelResult` per model, baseline first."""

    models: tuple[ModelResult, ...]
    settings: dict

    def to_dict(self) -> dict:
        return {"settings": dict(self.settings), "models": [m.to_dict() for m in self.models]}

    def table(self) -> str:
        """A plain-text table, one row per model and thread count."""
        names = [Path(m.tflite).name for m in self.models]
        width = max(len("model"), *map(len, names))
        rows = [f"{'model':<{width}}  threads  {'p50 ms':>9}  {'p50 range':>19}  {'p90 ms':>9}  "
                f"{'mean ms':>9}  {'speed-up':>8}  {'speed-up range':>14}"]
        for name, model in zip(names, self.models):
            for c in model.cells:
                p50_range = f"{c.p50_range_ms[0]:.4f}-{c.p50_range_ms[1]:.4f}"
                speed_range = f"{c.speedup_range[0]:.2f}-{c.speedup_range[1]:.2f}"
                rows.append(f"{name:<{width}}  {c.threads:>7}  {c.p50_ms:>9.4f}  {p50_range:>19}  "
                            f"{c.p90_ms:>9.4f}  {c.mean_ms:>9.4f}  {c.speedup:>7.2f}x  "
                            f"{speed_range:>14}")
        return "\n".join(rows)


def compare(paths: Sequence, threads: Sequence[int] = (1, 2), repeats: int = 3,
            config: profile.ProfileConfig = profile.ProfileConfig()) -> Comparison:
    """Times several models side by side, interleaving their runs.

    Args:
      paths: the ``.tflite`` files; the first is the speed-up baseline.
      threads: thread counts to measure.
      repeats: independent repeats (each reloads the models).
      config: run counts, warm-up, XNNPACK and pinning (its ``threads`` is ignored).

    Returns:
      A frozen :class:`Comparison`.

    Raises:
      ProfileError: a file is missing or is not a loadable TFLite model.

    Example:
      >>> c = compare(["dense.tflite", "pruned.tflite"], threads=(1,), repeats=2)
      >>> print(c.table())
    """
    paths = [profile.check_tflite(p) for p in paths]  # fail before any timing
    if not paths:
        raise ProfileError("no models given; pass --tflite=MODEL.tflite at least once")
    per_repeat = {(m, t): [] for m in range(len(paths)) for t in threads}
    for repeat in range(repeats):
        # Rotate which model starts each round, so none always runs on a cache warmed by another.
        order = [(repeat + i) % len(paths) for i in range(len(paths))]
        for t in threads:
            for m, stats in zip(order, _time_once([paths[i] for i in order], t, config)):
                per_repeat[(m, t)].append(stats)
    models = tuple(ModelResult(str(p), tuple(_cell(per_repeat[(m, t)], per_repeat[(0, t)])
                                             for t in threads))
                   for m, p in enumerate(paths))
    settings = {"threads": list(threads), "repeats": repeats, "min_runs": config.min_runs,
                "min_secs": config.min_secs, "warmup_runs": config.warmup_runs,
                "xnnpack": config.use_xnnpack, "pin_single_thread": config.pin_single_thread}
    return Comparison(models, settings)


def _time_once(paths, threads: int, config) -> list[LatencyStats]:
    with profile.placement(threads, config.pin_single_thread) as cpu:
        sessions = [profile.Session(p, threads, config.use_xnnpack, config.seed) for p in paths]
        for session in sessions:
            session.warm_up(config.warmup_runs)
        times = profile.time_interleaved(sessions, config.min_runs, config.min_secs)
    return [LatencyStats.from_times(t, threads, cpu) for t in times]


def _cell(stats: list[LatencyStats], baseline: list[LatencyStats]) -> Cell:
    p50s = [s.p50_ms for s in stats]
    ratios = [b.p50_ms / s.p50_ms for b, s in zip(baseline, stats)]
    return Cell(stats[0].threads, float(np.median(p50s)),
                float(np.median([s.p90_ms for s in stats])),
                float(np.median([s.mean_ms for s in stats])), (min(p50s), max(p50s)),
                float(np.median(ratios)), (min(ratios), max(ratios)), sum(s.count for s in stats))


def main(argv: Sequence[str]) -> int:
    """Runs the comparison with the parsed :data:`FLAGS`; returns the exit code."""
    if len(argv) > 1:
        return _fail(f"unexpected arguments {argv[1:]}; models go in --tflite=PATH")
    try:
        threads = cli.thread_counts(FLAGS.threads)
        config = profile.ProfileConfig(threads=threads, min_runs=FLAGS.min_runs,
                                       min_secs=FLAGS.min_secs, warmup_runs=FLAGS.warmup_runs,
                                       use_xnnpack=not FLAGS.no_xnnpack, pin_single_thread=FLAGS.pin)
        result = compare(FLAGS.tflite or [], threads, FLAGS.repeats, config)
        if FLAGS.json:
            atomic.write_text(FLAGS.json, json.dumps(result.to_dict(), indent=2) + "\n")
    except PruningError as e:  # ProfileError, or a bad --threads
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write --json={FLAGS.json}: {e.strerror}; pick a writable path")
    print(result.table())
    if FLAGS.json:
        print(f"wrote {FLAGS.json}")
    return 0


def _fail(message: str) -> int:
    return cli.fail("benchmark", message)


parse_argv, run = cli.entry_points("benchmark", FLAGS, __doc__, main)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_argv)
