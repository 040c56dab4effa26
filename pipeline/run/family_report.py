"""A family run's summary: every exported file of every ratio, the Pareto front, the table.

A run whose ``prune.ratio`` is a tuple (:mod:`pipeline.run.family`) prunes
the shared baseline once per ratio; each ratio's folder holds its own
``report.json``. This module turns those reports into the top-level
report's ``family`` section and its markdown, from plain dicts only (no
model, no file is read), so it is tested on made-up numbers.

``family`` keys:

* ``ratios``: the requested ratios, in order;
* ``cost``: what the Pareto front weighs against accuracy: ``"latency"``
  (the LiteRT p50 at ``threads`` threads, when every point was timed) or
  ``"macs"`` (latency profiling off);
* ``threads``: the thread count of ``latency_p50_ms`` (None when not timed);
* ``members``: one per ratio: ``ratio``, ``dir`` (its sub-folder),
  ``status`` (``ok`` or ``failed``), ``reason`` (one line, ``""`` when ok),
  ``report`` (its ``report.json``, relative to the workdir; None when failed),
  ``macs_removed`` and ``accuracy`` of its fine-tuned Keras model (None when
  failed), ``failed_variants`` (``[{"name", "reason"}]``);
* ``points``: one per file made, the baseline's first (``ratio`` None),
  then by ratio in variant order: ``ratio``, ``variant``, ``tflite``
  (relative to the workdir), ``macs``, ``macs_removed`` (the file's MACs
  against the baseline's), ``accuracy`` (LiteRT, test split),
  ``latency_p50_ms`` and ``latency_p90_ms`` (None when not timed; the p90
  is the spread shown beside the p50), ``size_bytes`` and ``pareto`` (no
  other point is both cheaper and at least as accurate).

Example:
  >>> body = summarise((0.5,), base_report_variants, [member], base_macs=10**6, threads=(1,))
  >>> [p["variant"] for p in body["points"] if p["pareto"]]
  ['baseline_fp32', 'pruned_int8']
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from pipeline.run.plots import pareto_front
from pipeline.run.results import FAILED, OK

LATENCY, MACS = "latency", "macs"


@dataclasses.dataclass(frozen=True)
class Member:
    """One ratio of a family, finished or failed.

    Attributes:
      ratio: the fraction of ``prune.target`` it removes.
      folder: its sub-folder, relative to the workdir (``ratio_0.50``).
      report: its ``report.json`` body; None when the ratio failed before its report.
      reason: why it failed, one line ('' when it finished).
    """

    ratio: float
    folder: str
    report: dict | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.report is not None


def folder(ratio: float) -> str:
    """The sub-folder of ``ratio``: two decimals when they are exact, else every digit.

    Example:
      >>> folder(0.5), folder(0.333)
      ('ratio_0.50', 'ratio_0.333')
    """
    two = f"{ratio:.2f}"
    return f"ratio_{two}" if float(two) == ratio else f"ratio_{ratio!r}"


def summarise(ratios: Sequence[float], base_variants: list[dict], members: list[Member], *,
              base_macs: int, threads: Sequence[int]) -> dict:
    """The top-level report's ``family`` section (keys: the module doc).

    Args:
      ratios: ``prune.ratio``, the tuple.
      base_variants: the top-level report's ``variants`` (the baseline's files, which
        every ratio shares).
      members: one :class:`Member` per ratio, in order.
      base_macs: the baseline's MACs (``macs_removed`` is measured against them).
      threads: ``evaluate.latency_threads``; the fewest threads are the latency compared.
    """
    timed = min(threads) if threads else None
    points = [_point(None, v, "", base_macs, timed) for v in base_variants if v["status"] == OK]
    for m in members:
        if m.ok:
            points += [_point(m.ratio, v, m.folder, base_macs, timed)
                       for v in m.report["variants"]
                       if v["status"] == OK and v["source"] != "baseline"]
    cost = LATENCY if points and all(p["latency_p50_ms"] is not None for p in points) else MACS
    front = set(pareto_front([_cost(p, cost) for p in points]))
    for p in points:
        p["pareto"] = _cost(p, cost) in front
    return {"ratios": list(ratios), "cost": cost, "threads": timed if cost == LATENCY else None,
            "members": [_member(m) for m in members], "points": points}


def _point(ratio, variant: dict, under: str, base_macs: int, threads) -> dict:
    latency = (variant.get("latency_ms") or {}).get(str(threads)) if threads else None
    return {"ratio": ratio, "variant": variant["name"],
            "tflite": f"{under}/{variant['tflite']}" if under else variant["tflite"],
            "macs": variant["macs"], "macs_removed": 1 - variant["macs"] / base_macs,
            "accuracy": variant["accuracy"],
            "latency_p50_ms": latency["p50"] if latency else None,
            "latency_p90_ms": latency["p90"] if latency else None,
            "size_bytes": variant["size_bytes"]}


def _cost(point: dict, cost: str) -> tuple[float, float]:
    return (point["latency_p50_ms"] if cost == LATENCY else float(point["macs"]),
            point["accuracy"])


def _member(m: Member) -> dict:
    if not m.ok:
        return {"ratio": m.ratio, "dir": m.folder, "status": FAILED, "reason": m.reason,
                "report": None, "macs_removed": None, "accuracy": None, "failed_variants": []}
    pruned = m.report["pruned"]
    return {"ratio": m.ratio, "dir": m.folder, "status": OK, "reason": "",
            "report": f"{m.folder}/report.json", "macs_removed": pruned["removed"].get("macs"),
            "accuracy": pruned["accuracy"],
            "failed_variants": [{"name": v["name"], "reason": v["reason"]}
                                for v in m.report["variants"] if v["status"] == FAILED]}


def variant_failures(family: dict) -> list[str]:
    """One line per failed variant of a ratio, ``"<name> (ratio <r>): <reason>"``."""
    return [f"{v['name']} (ratio {m['ratio']:g}): {v['reason']}"
            for m in family["members"] for v in m["failed_variants"]]


def ratio_failures(family: dict) -> list[str]:
    """One line per ratio that failed before its export, ``"<r>: <reason>"``."""
    return [f"{m['ratio']:g}: {m['reason']}" for m in family["members"]
            if m["status"] == FAILED]


def markdown(report: dict) -> str:
    """``report.md`` of a family: the baseline, the table of every file, failures, plots."""
    base, family = report["baseline"], report["family"]
    members = family["members"]
    finished = sum(m["status"] == OK for m in members)
    lines = [
        "# Pruning report: a family of models",
        "",
        f"Baseline (Keras): test accuracy {base['accuracy']:.4f}, {_si(base['macs'])} MACs, "
        f"{_si(base['params'])} params. Ratios of {_target(report)} removed: "
        f"{', '.join(f'{r:g}' for r in family['ratios'])} ({finished} of {len(members)} "
        "finished).",
        f"Pareto front (*): no other file is both {_cost_words(family)} and at least as "
        "accurate.",
        "",
        "| ratio | MACs removed | variant | accuracy | latency p50 (p90) ms | size | "
        "Pareto | file |",
        "| ---: | ---: | --- | ---: | ---: | ---: | :---: | --- |",
    ]
    for p in family["points"]:
        ratio = "baseline" if p["ratio"] is None else f"{p['ratio']:g}"
        latency = ("-" if p["latency_p50_ms"] is None
                   else f"{p['latency_p50_ms']:.3f} ({p['latency_p90_ms']:.3f})")
        lines.append(f"| {ratio} | {p['macs_removed']:.1%} | {p['variant']} | "
                     f"{p['accuracy']:.4f} | {latency} | {p['size_bytes'] / 1024:.1f} KiB | "
                     f"{'*' if p['pareto'] else ''} | {p['tflite']} |")
    lines += ["", "## Ratios", ""]
    for m in members:
        if m["status"] == OK:
            failed = "".join(f"; {v['name']} failed: {v['reason']}" for v in m["failed_variants"])
            lines.append(f"- {m['ratio']:g}: {m['macs_removed']:.1%} of MACs removed, Keras "
                         f"test accuracy {m['accuracy']:.4f}; [{m['dir']}/report.md]"
                         f"({m['dir']}/report.md){failed}")
        else:
            lines.append(f"- {m['ratio']:g}: failed, nothing exported: {m['reason']}")
    for name, path in report.get("plots", {}).items():
        title = _TITLES.get(name, name)
        lines += ["", f"## {title}", "", f"![{title}]({path})"]
    return "\n".join(lines) + "\n"


_TITLES = {"family_tradeoff": "Accuracy against cost, every ratio and variant "
                              "(Pareto front ringed)",
           "sensitivity": "Sensitivity: validation accuracy with one group pruned"}


def _target(report: dict) -> str:
    return report.get("config", {}).get("prune", {}).get("target", "macs")


def _cost_words(family: dict) -> str:
    if family["cost"] == LATENCY:
        return f"faster (LiteRT p50, {family['threads']} thread(s))"
    return "cheaper in MACs (latency was not timed)"


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
