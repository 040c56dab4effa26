"""Choosing which channels to remove: layer-wise or global, to a filter or MAC target.

Each group first gets its *removal sequence*: its channels in ascending score,
skipping any whose removal would leave one of the group's producers with fewer
than ``min_filters`` channels. A selection is then just "the first n of each
sequence":

* ``scope="layer"``: the same fraction of every group.
* ``scope="global"``: one ranking of all groups' channels, scores divided by
  their group's mean so that groups of different size and scale compete
  fairly; the first k channels of that ranking.

``round_to`` then rounds each group's kept count up to the next width of its
*ladder*: multiples of an integer ``round_to`` (and the full size), or with
``"auto"`` the group's own speed steps (:mod:`pipeline.pruning.lanes`: a
latency table's, else the lane-width rule by group width; a level of finer
steps when the coarser cannot reach the target). The fraction or k is found
by bisection so that the removed share of filters or MACs meets the target;
the result must land within ``TOLERANCE`` of it.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable

import numpy as np

from pipeline.pruning import lanes
from pipeline.pruning.channels import Analysis
from pipeline.pruning.counting import layer_macs
from pipeline.errors import TargetError

MEASURES = ("filters", "macs")  # what select() counts; targets by name: pipeline.pruning.targets
SCOPES = ("global", "layer")
TOLERANCE = 0.02


@dataclasses.dataclass(frozen=True)
class Constraints:
    """Limits on what may be removed.

    Attributes:
      min_filters: fewest channels any producer keeps (>= 1).
      round_to: kept channel counts are multiples of this (or the full count),
        or ``"auto"``: each group's speed steps (:mod:`pipeline.pruning.lanes`).
      ratios: per-layer overrides: group or producer name pattern -> fraction
        removed from that group, outside the global ranking.
      ladders: with ``"auto"``, ``(group name, kept widths)`` pairs read from a
        latency table (:mod:`pipeline.latency.steps`); other groups use the rule.
    """

    min_filters: int = 1
    round_to: int | str = 1
    ratios: tuple = ()
    ladders: tuple = ()

    def __post_init__(self):
        if int(self.min_filters) < 1:
            raise TargetError(f"min_filters must be >= 1, got {self.min_filters}",
                              argument="min_filters")
        try:
            object.__setattr__(self, "round_to", lanes.check(self.round_to))
        except ValueError as e:
            raise TargetError(str(e), argument="round_to") from e
        for pattern, ratio in self.ratios:
            if not 0 <= ratio < 1:
                raise TargetError(f"per-layer ratio for '{pattern}' must be in [0, 1), got {ratio}")


@dataclasses.dataclass(frozen=True)
class Selection:
    """The outcome: kept indices per group and the share of each measure removed.

    ``alignment`` says what ``round_to="auto"`` resolved to (None for an
    integer): ``{"round_to": "auto", "level": finer levels needed, "steps":
    {group: step, or "table" for a table's ladder}}``.
    """

    kept: dict
    removed: dict  # measure name -> fraction removed
    alignment: dict | None = None


def select(analysis: Analysis, scores: dict, ratio: float, target: str, scope: str,
           constraints: Constraints) -> Selection:
    """Picks the channels to keep.

    Args:
      analysis: the model's channel analysis.
      scores: group name -> importance of each of its channels.
      ratio: fraction of ``target`` to remove, in [0, 1).
      target: ``"filters"`` or ``"macs"``.
      scope: ``"layer"`` or ``"global"``.
      constraints: min_filters, round_to and per-layer ratios.

    Returns:
      A :class:`Selection`.

    Raises:
      TargetError: bad arguments, or a target the constraints make unreachable.
    """
    _check(ratio, target, scope)
    levels = range(lanes.LEVELS) if constraints.round_to == lanes.AUTO else (0,)
    for level in levels:  # "auto": finer steps only when the coarser cannot reach
        plan = _Planner(analysis, scores, constraints, level)
        measure = plan.filters_removed if target == "filters" else plan.macs_removed
        if scope == "global":
            counts = _search(plan.global_counts, measure, ratio, 0, plan.total_steps,
                             integer=True)
        else:
            counts = _search(plan.layer_counts, measure, ratio, 0.0, 1.0, integer=False)
        if abs(measure(counts) - ratio) > TOLERANCE:
            counts = plan.refine(counts, measure, ratio)
        achieved = measure(counts)
        if abs(achieved - ratio) <= TOLERANCE + 1e-9:
            return plan.selection(counts)
    raise TargetError(
        f"cannot remove {ratio:.1%} of {target}: the closest reachable is {achieved:.1%} "
        f"(min_filters={constraints.min_filters}, round_to={constraints.round_to}, "
        f"{len(analysis.groups)} prunable groups); lower the ratio, min_filters or round_to, "
        "or un-ignore layers")


def select_fixed(analysis: Analysis, scores: dict, constraints: Constraints) -> Selection:
    """Removes only what ``constraints.ratios`` fixes per group; every other group stays whole.

    Unlike :func:`select` with ``ratio=0``, no overall target is checked, so
    one group can lose most of its channels (the sensitivity scan, one group
    at a time). ``round_to`` and ``min_filters`` apply as in :func:`select`.
    """
    plan = _Planner(analysis, scores, constraints)
    return plan.selection(plan.fixed_counts())


def planner(analysis: Analysis, scores: dict, constraints: Constraints,
            level: int = 0) -> "_Planner":
    """The removal sequences and measures behind :func:`select`, for other allocators.

    A choice of counts (channels removed from each group's sequence) maps to
    kept indices with ``.kept(counts)`` and to a keep mask with ``.keep_mask``;
    ``.ladders[gi]`` holds the widths group ``gi`` may keep (None: any).
    """
    return _Planner(analysis, scores, constraints, level)


def normalise(group_scores) -> np.ndarray:
    """A group's scores divided by their mean, so groups compete fairly in one ranking."""
    s = np.asarray(group_scores, np.float64)
    mean = s.mean() if s.size else 0.0
    return s / mean if mean > 0 else s


def _check(ratio, target, scope):
    if not 0 <= ratio < 1:
        raise TargetError(f"prune ratio must be in [0, 1), got {ratio}", argument="ratio")
    if target not in MEASURES:
        raise TargetError(f"select() counts {', '.join(MEASURES)}, not '{target}'; other targets "
                          "have selectors of their own (pipeline.pruning.targets)",
                          argument="target")
    check_scope(scope)


def check_scope(scope: str) -> None:
    """Raises TargetError unless ``scope`` is one of :data:`SCOPES`."""
    if scope not in SCOPES:
        raise TargetError(f"unknown scope '{scope}'; choose one of: {', '.join(SCOPES)}",
                          argument="scope")


def _search(counts_of: Callable, measure: Callable, ratio: float, lo, hi, integer: bool):
    """Bisects the parameter of ``counts_of`` for the measure closest to ``ratio``.

    The measure grows with the parameter. Returns the counts of the smallest
    parameter that reaches ``ratio`` or of the one just below, whichever is
    closer; the largest parameter's counts when nothing reaches it.
    """
    if measure(counts_of(lo)) >= ratio:
        return counts_of(lo)
    if measure(counts_of(hi)) < ratio:
        return counts_of(hi)
    for _ in range(64):  # invariant: measure(lo) < ratio <= measure(hi)
        if integer and hi - lo <= 1:
            break
        mid = (lo + hi) // 2 if integer else (lo + hi) / 2
        if measure(counts_of(mid)) >= ratio:
            hi = mid
        else:
            lo = mid
    return min((counts_of(hi), counts_of(lo)), key=lambda c: abs(measure(c) - ratio))


class _Planner:
    """Removal sequences per group and the measures of a choice of counts.

    A choice is an int array: how many channels of each group's removal
    sequence go (before ``round_to``). ``level`` halves the steps of
    ``round_to="auto"`` that many times.
    """

    def __init__(self, analysis: Analysis, scores: dict, constraints: Constraints,
                 level: int = 0):
        self.analysis = analysis
        self.groups = analysis.groups
        self.constraints = constraints
        self.level = level
        self.steps, self.ladders = self._ladders()
        self.sequences = [self._sequence(g, scores[g.name]) for g in self.groups]
        self.fixed = self._overrides()
        self._global_order = self._merge(scores)
        self.total_steps = len(self._global_order)
        self.total_filters = sum(g.size for g in self.groups)
        everything = np.ones(analysis.n_ids, bool)
        self._mac_layers = [l for l in analysis.layers if layer_macs(l, everything)]
        self.full_macs = self._macs(everything)

    def _ladders(self) -> tuple[dict, list]:
        """Each group's step (or "table") and the widths it may keep (None: every width)."""
        round_to = self.constraints.round_to
        if round_to != lanes.AUTO:
            step = int(round_to)
            return {}, [None if step == 1 else np.asarray(lanes.ladder(g.size, step, auto=False))
                        for g in self.groups]
        tabled = dict(self.constraints.ladders) if self.level == 0 else {}
        steps, ladders = {}, []
        for g in self.groups:
            if g.name in tabled:
                steps[g.name] = "table"
                widths = [w for w in tabled[g.name] if 0 < w < g.size] + [g.size]
                ladders.append(np.unique(np.asarray(widths, np.int64)))
                continue
            steps[g.name] = lanes.auto_step(g.size, self.level)
            step = steps[g.name]
            ladders.append(None if step == 1 else np.asarray(lanes.ladder(g.size, step)))
        return steps, ladders

    def alignment(self) -> dict | None:
        """What ``round_to="auto"`` resolved to (None for an integer round_to)."""
        if self.constraints.round_to != lanes.AUTO:
            return None
        return {"round_to": lanes.AUTO, "level": self.level, "steps": dict(self.steps),
                "summary": lanes.describe(self.steps)}

    def selection(self, counts) -> Selection:
        """The :class:`Selection` of these counts."""
        return Selection(self.kept(counts), {"filters": self.filters_removed(counts),
                                             "macs": self.macs_removed(counts)},
                         self.alignment())

    def _sequence(self, group, group_scores) -> np.ndarray:
        """The group's channels in ascending score, skipping those min_filters protects."""
        outs = self.analysis.producer_outs
        local = {int(c): i for i, c in enumerate(group.classes)}
        left = {}
        per_channel = [[] for _ in range(group.size)]  # [(producer, positions it occupies)]
        for producer in group.producers:
            ids, counts = np.unique(outs[producer], return_counts=True)
            left[producer] = len(outs[producer])
            for c, n in zip(ids, counts):
                if int(c) in local:
                    per_channel[local[int(c)]].append((producer, int(n)))
        order = np.lexsort((np.arange(group.size), group_scores))
        sequence = []
        floor = self.constraints.min_filters
        for i in order:
            if all(left[p] - n >= floor for p, n in per_channel[i]):
                for p, n in per_channel[i]:
                    left[p] -= n
                sequence.append(i)
        return np.asarray(sequence, dtype=np.int64)

    def _overrides(self) -> dict:
        fixed = {}
        for gi, group in enumerate(self.groups):
            for pattern, ratio in self.constraints.ratios:
                names = (group.name,) + group.producers
                if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                    fixed[gi] = min(int(np.floor(ratio * group.size + 1e-9)),
                                    len(self.sequences[gi]))
        return fixed

    def _merge(self, scores) -> np.ndarray:
        """Group index of each step of the global ranking (normalised scores)."""
        keys, owners, positions = [], [], []
        for gi, group in enumerate(self.groups):
            if gi in self.fixed:
                continue
            normalised = normalise(scores[group.name])
            seq = self.sequences[gi]
            keys.append(normalised[seq])
            owners.append(np.full(len(seq), gi))
            positions.append(np.arange(len(seq)))
        if not keys:
            return np.zeros(0, np.int64)
        keys, owners, positions = map(np.concatenate, (keys, owners, positions))
        return owners[np.lexsort((positions, owners, keys))]

    def fixed_counts(self) -> np.ndarray:
        """Counts with only the per-layer overrides applied (every other group whole)."""
        return self._with_fixed(np.zeros(len(self.groups), np.int64))

    def global_counts(self, k: int) -> np.ndarray:
        counts = np.bincount(self._global_order[:k], minlength=len(self.groups))
        return self._with_fixed(counts)

    def layer_counts(self, fraction: float) -> np.ndarray:
        counts = np.array([min(int(np.floor(fraction * g.size + 1e-9)), len(seq))
                           for g, seq in zip(self.groups, self.sequences)], dtype=np.int64)
        return self._with_fixed(counts)

    def _with_fixed(self, counts):
        for gi, n in self.fixed.items():
            counts[gi] = n
        return self._rounded(counts)

    def _rounded(self, counts) -> np.ndarray:
        """Each group's kept count rounded up to the next width of its ladder."""
        rounded = counts.copy()
        for gi, (group, widths) in enumerate(zip(self.groups, self.ladders)):
            if widths is not None:
                kept = group.size - counts[gi]
                rounded[gi] = group.size - widths[np.searchsorted(widths, kept)]
        return rounded

    def refine(self, counts, measure: Callable, ratio: float, max_moves: int = 200):
        """Moves single groups one allowed step at a time toward ``ratio``.

        Coarse ``round_to`` steps can make every prefix of the ranking miss the
        target; trading one group's step for another's usually lands closer.
        """
        counts = counts.copy()
        best = abs(measure(counts) - ratio)
        for _ in range(max_moves):
            moves = [c for gi in range(len(self.groups)) for c in self._neighbours(counts, gi)]
            if not moves:
                break
            errors = [abs(measure(c) - ratio) for c in moves]
            i = int(np.argmin(errors))
            if errors[i] >= best - 1e-12:
                break
            counts, best = moves[i], errors[i]
            if best <= TOLERANCE:
                break
        return counts

    def _neighbours(self, counts, gi):
        """Counts with group ``gi`` one rung of its ladder narrower or wider."""
        if gi in self.fixed:
            return []
        size, limit, widths = self.groups[gi].size, len(self.sequences[gi]), self.ladders[gi]
        kept = size - counts[gi]
        if widths is None:
            options = [k for k in (kept - 1, kept + 1) if 0 < k <= size]
        else:
            i = int(np.searchsorted(widths, kept))  # widths[i] == kept once rounded
            options = [int(widths[j]) for j in (i - 1, i + 1) if 0 <= j < len(widths)]
        options = [k for k in options if size - k <= limit]
        result = []
        for k in options:
            moved = counts.copy()
            moved[gi] = size - k
            result.append(moved)
        return result

    def keep_mask(self, counts) -> np.ndarray:
        keep = np.ones(self.analysis.n_ids, bool)
        for group, seq, n in zip(self.groups, self.sequences, counts):
            keep[group.classes[seq[:n]]] = False
        return keep

    def kept(self, counts) -> dict:
        result = {}
        for group, seq, n in zip(self.groups, self.sequences, counts):
            mask = np.ones(group.size, bool)
            mask[seq[:n]] = False
            result[group.name] = np.flatnonzero(mask)
        return result

    def filters_removed(self, counts) -> float:
        return float(np.sum(counts)) / self.total_filters if self.total_filters else 0.0

    def macs_removed(self, counts) -> float:
        if not self.full_macs:
            return 0.0
        return 1.0 - self._macs(self.keep_mask(counts)) / self.full_macs

    def _macs(self, keep) -> int:
        return sum(layer_macs(layer, keep) for layer in self._mac_layers)
