"""target="latency": allocate, rebuild, measure, and refine until the budget is met.

Each round allocates (:class:`pipeline.latency.allocate.Allocator`) for a few
targets around the wanted one and keeps the allocation predicted closest to
it. The narrower model is then rebuilt, converted and timed against the
original, in alternating blocks (:class:`pipeline.latency.measure.ModelTimer`).
If the measured ratio misses ``1 - ratio`` by more than ``tolerance``
(relative), the next round aims its prediction between the rounds measured
on either side of the budget (or rescales the last by budget / measured), up
to ``max_iterations`` rounds. With a device table nothing can be timed here:
one round, reported as predicted only.

Example:
  >>> chosen, report = select_latency(model, analysis, scores, 0.5, "global", Constraints(),
  ...                                 LatencyConfig(cache_dir="/tmp/latency"))
  >>> report.to_dict()["measured_ms"], report.to_dict()["budget_ms"]
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.errors import TargetError
from pipeline.latency import measure as latency_measure
from pipeline.latency.allocate import Allocator, CostModel
from pipeline.latency.config import LatencyConfig
from pipeline.latency.table import cost_layers, table_for
from pipeline.pruning import selection, targets
from pipeline.pruning.channels import Analysis
from pipeline.pruning.rebuild import rebuild

# Targets tried around the one wanted, relative (see _closest).
SPREAD = (0.0, -0.02, 0.02, -0.04, 0.04, -0.07, 0.07)
_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class Round:
    """One allocate-rebuild-measure round (``measured_ms`` None when nothing was timed)."""

    target_ms: float
    predicted_ms: float
    predicted_ratio: float
    measured_ms: float | None = None
    full_ms: float | None = None
    measured_ratio: float | None = None


@dataclasses.dataclass(frozen=True)
class LatencyReport:
    """What the latency target asked for and what it got; ``rounds[chosen]`` was kept."""

    device: str
    ratio: float
    tolerance: float
    predicted_full_ms: float
    rounds: tuple[Round, ...]
    chosen: int
    utility: str

    @property
    def kept(self) -> Round:
        return self.rounds[self.chosen]

    def error(self, r: Round) -> float:
        """Relative miss of the budget (measured if timed, else predicted)."""
        got = r.measured_ratio if r.measured_ratio is not None else r.predicted_ratio
        return abs(got - (1 - self.ratio)) / (1 - self.ratio)

    def to_dict(self) -> dict:
        r = self.kept
        full = r.full_ms if r.full_ms is not None else self.predicted_full_ms
        return {"device": self.device, "ratio": self.ratio, "tolerance": self.tolerance,
                "utility": self.utility,
                "measured": r.measured_ms is not None, "full_ms": full,
                "budget_ms": (1 - self.ratio) * full, "predicted_ms": r.predicted_ms,
                "measured_ms": r.measured_ms, "error": self.error(r),
                "rounds": [dataclasses.asdict(x) for x in self.rounds]}


def select_latency(model, analysis: Analysis, scores: dict, ratio: float, scope: str,
                   constraints: selection.Constraints,
                   config: LatencyConfig) -> tuple[selection.Selection, LatencyReport]:
    """Chooses the channels to keep so that ``ratio`` of the measured latency goes.

    Returns:
      The :class:`~pipeline.pruning.selection.Selection` (``removed`` has ``latency``,
      measured when timed) and the :class:`LatencyReport`.

    Raises:
      TargetError: bad ratio or scope, or no round landed within the tolerance.
      LatencyTableError: a device table is unusable.
    """
    if not 0 <= ratio < 1:
        raise TargetError(f"prune ratio must be in [0, 1), got {ratio}")
    if scope != "global":
        raise TargetError(f"target='latency' allocates globally; scope='{scope}' is not "
                          "supported with it, use scope='global'")
    plan = selection.planner(analysis, scores, constraints)
    alloc = Allocator(plan, scores, config.utility)
    layers = cost_layers(analysis, plan.keep_mask(alloc.floor_counts()), config.grid)
    table = table_for(analysis, layers, config)
    timer = None if config.table else latency_measure.ModelTimer(model, config.timing)
    try:
        cost = CostModel(layers, table, analysis, timer.full_ms() if timer else None)
        rounds, counts = _rounds(model, analysis, plan, alloc, cost, ratio, config, timer)
    finally:
        if timer is not None:
            timer.close()
    report = LatencyReport(cost.table.device, float(ratio), config.tolerance,
                           cost.total(np.ones(analysis.n_ids, bool)), tuple(rounds), 0,
                           config.utility)
    chosen = min(range(len(rounds)), key=lambda i: report.error(rounds[i]))
    report = dataclasses.replace(report, chosen=chosen)
    if report.error(report.kept) > config.tolerance:
        floor = cost.total(plan.keep_mask(alloc.floor_counts())) / report.predicted_full_ms
        raise TargetError(_miss_message(report, floor, constraints))
    kept = report.kept
    got = kept.measured_ratio if kept.measured_ratio is not None else kept.predicted_ratio
    return selection.Selection(plan.kept(counts[chosen]), {
        "filters": plan.filters_removed(counts[chosen]), "macs": plan.macs_removed(counts[chosen]),
        "latency": 1.0 - got}), report


def _rounds(model, analysis, plan, alloc, cost, ratio, config, timer):
    """Allocate, rebuild, time; re-aim the prediction from the rounds measured so far."""
    goal = 1.0 - ratio
    full = cost.total(np.ones(analysis.n_ids, bool))
    rounds, counts = [], []
    for _ in range(config.max_iterations):
        target = _aim(rounds, goal) * full
        chosen, predicted = _closest(alloc, cost, plan, target)
        if timer is None:
            return [Round(target, predicted, predicted / full)], [chosen]
        if counts and np.array_equal(chosen, counts[-1]):
            break  # the allocation no longer changes: the target is out of reach
        timed = timer.compare(rebuild(model, analysis, plan.keep_mask(chosen)))
        rounds.append(Round(target, predicted, predicted / full, timed.pruned_ms, timed.full_ms,
                            timed.ratio))
        counts.append(chosen)
        if abs(timed.ratio - goal) <= config.tolerance * goal:
            break
    return rounds, counts


def _aim(rounds: list, goal: float) -> float:
    """The predicted share to allocate for, so that the measured share lands on ``goal``.

    First the goal itself; then between the two rounds measured closest on
    either side of it, linearly; else the last round's prediction rescaled by
    goal / measured.
    """
    if not rounds:
        return goal
    below = [r for r in rounds if r.measured_ratio < goal]
    above = [r for r in rounds if r.measured_ratio >= goal]
    if below and above:
        lo = max(below, key=lambda r: r.measured_ratio)
        hi = min(above, key=lambda r: r.measured_ratio)
        if hi.measured_ratio > lo.measured_ratio:
            return lo.predicted_ratio + (goal - lo.measured_ratio) * (
                hi.predicted_ratio - lo.predicted_ratio) / (hi.measured_ratio - lo.measured_ratio)
    last = rounds[-1]
    return last.predicted_ratio * goal / last.measured_ratio


def _closest(alloc: Allocator, cost: CostModel, plan, target_ms: float):
    """The allocation whose prediction lands closest to ``target_ms`` (either side).

    The greedy path moves in steps (a width that falls on a speed step can
    drop a big share at once), so allocations for a few targets around the
    one wanted are compared.
    """
    best = None
    for spread in SPREAD:
        chosen = alloc.allocate(cost, target_ms * (1 + spread))
        predicted = cost.total(plan.keep_mask(chosen))
        if best is None or abs(predicted - target_ms) < abs(best[1] - target_ms) - _EPS:
            best = (chosen, predicted)
    return best


def _miss_message(report: LatencyReport, floor_ratio: float, constraints) -> str:
    r = report.kept
    got = r.measured_ratio if r.measured_ratio is not None else r.predicted_ratio
    tried = ", ".join(f"{x.predicted_ratio:.0%}->{x.measured_ratio:.0%}" for x in report.rounds
                      if x.measured_ratio is not None)
    return (f"cannot remove {report.ratio:.1%} of the latency within {report.tolerance:.0%}: the "
            f"closest of {len(report.rounds)} round(s) (predicted->measured share kept: "
            f"{tried or 'not measured'}) kept {got:.1%} of it (budget "
            f"{1 - report.ratio:.1%}); the narrowest model the table allows keeps about "
            f"{floor_ratio:.0%} (min_filters={constraints.min_filters}, "
            f"round_to={constraints.round_to}). Lower the ratio or min_filters, or rerun on a "
            "quieter machine (timing noise), or raise LatencyConfig.max_iterations/tolerance")


def _select(request: targets.Request) -> targets.Chosen:
    """The ``latency`` target's selector (``request.options``: a LatencyConfig or None)."""
    chosen, report = select_latency(request.model, request.analysis, request.scores,
                                    request.ratio, request.scope, request.constraints,
                                    request.options or LatencyConfig())
    return targets.Chosen(chosen, report.to_dict())


def _no_steps(model, analysis: Analysis) -> float:
    raise TargetError("target='latency' prunes in one step: iterative latency pruning is not "
                      "supported; prune in one step (iterations=1)", argument="iterations")


targets.register(targets.Target("latency", _select, _no_steps, options=LatencyConfig))

