"""The report's figures as PNG files: trade-offs, channels per layer, sensitivity.

* ``accuracy_vs_macs.png``, ``accuracy_vs_latency.png``: one marker per
  export variant that was made (a failed or not applicable one has no
  accuracy), the Pareto front (no other variant is both cheaper and at
  least as accurate) joined by a line and ringed;
* ``channels.png``: channels of every layer before and after pruning (the
  plan's layer summary), side by side;
* ``sensitivity.png``: validation accuracy against the fraction of one
  group's channels removed, one line per group;
* ``family_tradeoff.png``: a run of several ratios, every file of every
  ratio (:func:`family_tradeoff`).

Figures are drawn with matplotlib's Agg backend (no display needed) on
:class:`~matplotlib.figure.Figure` objects, not pyplot, so no global figure
state leaks between calls, and each file is written atomically.

Example:
  >>> from pipeline.run import plots
  >>> plots.write_all(report, plan.layers, sensitivity, "/tmp/run")
  {'accuracy_vs_macs': 'plots/accuracy_vs_macs.png', ...}
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # before any figure: files only, no display
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from pipeline import atomic  # noqa: E402

DIRECTORY = "plots"
_MARKERS = "osD^vP*Xh<>p"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats: ``(cost, accuracy)``, lower cost and higher accuracy better.

    A point is dropped when another has cost <= and accuracy >= with one of
    the two strict; exact duplicates of a front point are all kept. Returned
    by increasing cost.

    Example:
      >>> pareto_front([(1, 0.8), (2, 0.9), (3, 0.85), (2, 0.7)])
      [(1, 0.8), (2, 0.9)]
    """
    front = []
    for c, a in points:
        beaten = any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for c2, a2 in points)
        if not beaten:
            front.append((c, a))
    return sorted(front)


def accuracy_vs_cost(variants: list[dict], cost: str, path: str) -> str | None:
    """Plots accuracy against ``cost`` ("macs" or "latency") per variant; returns ``path``.

    Variants that were not made (``status`` other than ``"ok"``) are left out.
    Returns None (and writes nothing) when no variant has that cost, e.g.
    latency profiling was off.
    """
    named = [(v["name"], _cost(v, cost), v["accuracy"]) for v in variants
             if v.get("status", "ok") == "ok"]
    named = [(n, c, a) for n, c, a in named if c is not None]
    if not named:
        return None
    scale, unit = (1e6, "MACs per image (millions)") if cost == "macs" else (
        1.0, "latency per image, 1 thread, p50 (ms)")
    fig = Figure(figsize=(7, 4.8), layout="constrained")
    ax = fig.subplots()
    for i, (name, c, a) in enumerate(named):
        ax.scatter(c / scale, 100 * a, s=60, marker=_MARKERS[i % len(_MARKERS)], label=name,
                   zorder=3)
    front = pareto_front([(c, a) for _, c, a in named])
    ax.plot([c / scale for c, _ in front], [100 * a for _, a in front], color="0.3",
            linestyle="--", linewidth=1, zorder=2)
    ax.scatter([c / scale for c, _ in front], [100 * a for _, a in front], s=220,
               facecolors="none", edgecolors="crimson", linewidths=1.5, zorder=4,
               label="Pareto front")
    ax.set_xlabel(unit)
    ax.set_ylabel("test accuracy (%)")
    title = "MACs" if cost == "macs" else "latency"
    ax.set_title(f"Accuracy against {title} per export variant")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def family_tradeoff(points: list[dict], cost: str, path: str,
                    threads: int | None = None) -> str | None:
    """Accuracy against cost of every file of a family run, Pareto front ringed; returns ``path``.

    One colour per ratio (black for the baseline's files), one marker per
    variant; the front is the points' ``pareto`` flags
    (:func:`pipeline.run.family_report.summarise`).

    Args:
      points: the ``family.points`` of the report.
      cost: ``"latency"`` (``latency_p50_ms``) or ``"macs"``.
      path: the PNG to write.
      threads: the thread count the latencies were timed at (for the axis label).

    Returns:
      ``path``, or None (nothing written) when there is no point.
    """
    if not points:
        return None
    value = ((lambda p: p["latency_p50_ms"]) if cost == "latency"
             else (lambda p: p["macs"] / 1e6))
    ratios = sorted({p["ratio"] for p in points if p["ratio"] is not None})
    variants = list(dict.fromkeys(p["variant"] for p in points))
    colours = matplotlib.colormaps["viridis"]
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    for p in points:
        colour = ("black" if p["ratio"] is None
                  else colours(ratios.index(p["ratio"]) / max(1, len(ratios) - 1) * 0.9))
        ax.scatter(value(p), 100 * p["accuracy"], s=50, color=colour, zorder=3,
                   marker=_MARKERS[variants.index(p["variant"]) % len(_MARKERS)])
    front = sorted((value(p), 100 * p["accuracy"]) for p in points if p["pareto"])
    ax.plot(*zip(*front), color="0.3", linestyle="--", linewidth=1, zorder=2)
    ringed = ax.scatter(*zip(*front), s=200, facecolors="none", edgecolors="crimson",
                        linewidths=1.5, zorder=4, label="Pareto front")
    # Markers name the variants and colour swatches the ratios, in one legend.
    handles = [ringed] + [
        Line2D([], [], linestyle="none", marker=_MARKERS[i % len(_MARKERS)], color="0.5",
               label=name) for i, name in enumerate(variants)] + [
        Patch(color="black", label="baseline")] + [
        Patch(color=colours(i / max(1, len(ratios) - 1) * 0.9), label=f"ratio {ratio:g}")
        for i, ratio in enumerate(ratios)]
    at = f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""
    ax.set_xlabel(f"latency per image{at}, p50 (ms)" if cost == "latency"
                  else "MACs per image (millions)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Accuracy against {cost}: {len(ratios)} ratios, {len(variants)} variants")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    ax.legend(handles=handles, fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def channels_per_layer(layers: Sequence, path: str) -> str:
    """Grouped bars of every layer's channels before and after pruning; returns ``path``.

    Args:
      layers: a plan's ``layers`` (:class:`pipeline.pruning.plan.LayerSummary`) or
        their dicts from ``plan.json``.
      path: the PNG to write.
    """
    rows = [l if isinstance(l, dict) else dataclasses.asdict(l) for l in layers]
    names = [r["name"] for r in rows]
    width = max(7.0, 0.45 * len(rows) + 2)
    fig = Figure(figsize=(width, 4.8), layout="constrained")
    ax = fig.subplots()
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["channels_before"] for r in rows], 0.4, label="before",
           color="0.7")
    ax.bar([i + 0.2 for i in x], [r["channels_after"] for r in rows], 0.4, label="after",
           color="tab:blue")
    ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize="small")
    ax.set_ylabel("output channels")
    ax.set_title("Channels per layer before and after pruning")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def sensitivity_curves(curves: dict, path: str) -> str:
    """Validation accuracy against the share of one group removed, a line per group.

    Args:
      curves: ``sensitivity.json``'s content (:class:`pipeline.pruning.sensitivity.Curves`).
      path: the PNG to write.
    """
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    for i, (group, points) in enumerate(curves["groups"].items()):
        ax.plot([100 * p["ratio"] for p in points], [100 * p["accuracy"] for p in points],
                marker=_MARKERS[i % len(_MARKERS)], markersize=4,
                label=f"{group} ({curves['sizes'][group]})")
    ax.set_xlabel("channels of the group removed (%)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"Sensitivity: one group pruned, no fine-tuning "
                 f"({curves['examples']} validation images)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="group (channels)", fontsize="small", loc="center left",
              bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def write_all(report: dict, layers: Sequence | None, sensitivity: dict | None,
              workdir: str) -> dict[str, str]:
    """Writes every figure the inputs allow into ``workdir/plots``.

    Args:
      report: the report (its ``variants``).
      layers: the final plan's layer summary, or None.
      sensitivity: the sensitivity curves, or None.
      workdir: the run's directory.

    Returns:
      Figure name -> PNG path relative to ``workdir``.
    """
    made = {}

    def target(name):
        return os.path.join(workdir, DIRECTORY, f"{name}.png")

    for cost in ("macs", "latency"):
        if accuracy_vs_cost(report["variants"], cost, target(f"accuracy_vs_{cost}")):
            made[f"accuracy_vs_{cost}"] = f"{DIRECTORY}/accuracy_vs_{cost}.png"
    if layers:
        channels_per_layer(layers, target("channels"))
        made["channels"] = f"{DIRECTORY}/channels.png"
    if sensitivity and sensitivity.get("groups"):
        sensitivity_curves(sensitivity, target("sensitivity"))
        made["sensitivity"] = f"{DIRECTORY}/sensitivity.png"
    return made


def _cost(variant: dict, cost: str) -> float | None:
    if cost == "macs":
        return float(variant["macs"])
    latency = variant.get("latency_ms") or {}
    one = latency.get("1") or latency.get(1)
    return float(one["p50"]) if one else None


def _save(fig: Figure, path: str) -> str:
    with atomic.path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
