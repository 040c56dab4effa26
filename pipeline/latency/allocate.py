"""Greedy allocation of every group's width under a predicted-latency target.

HALP/NetAdapt-style. Each group may keep only the widths of its *ladder*:
its full width, then multiples of ``round_to`` (or, with ``round_to=1`` or
``"auto"``, of the SIMD-friendly :func:`pipeline.latency.table.lane_width`) down to what
``min_filters`` allows. Starting from the full model, the allocator
repeatedly takes the move (one group one to three rungs narrower) that loses
the least importance per millisecond saved, the milliseconds those of
:class:`CostModel`'s prediction for the layers (and the share of the rest)
the group touches. The importance lost is the group-normalised scores of the
channels that go, by default each divided by the channels the group still
has (``"log"`` utility: each halving of a group costs alike, so the
cheapest-per-millisecond layers are thinned, not emptied; summing the scores
plainly, HALP's ``"sum"``, thinned the default model's 32-channel
full-resolution convs to 8 and lost accuracy, see BENCHMARKS.md). A rung
that saves nothing is never taken alone, so widths settle where the table
shows a speed step. Once the prediction meets the target, rungs are given
back, most importance per millisecond first, while it still does; then
*trades* (one group a rung wider, another one to three rungs narrower) are
taken while they keep more importance, or as much (within ``TIE``) and land
closer to the target: a model whose widths fall on big speed steps can
otherwise only sit far below or above the budget. A second pass starts from
every group at its floor and widens the same way; the allocation keeping
more importance wins (the tests hold a case where the second pass does; an
unrecorded offline check found it winning on MobileNetV2 at high ratios).

Measuring the result and refining the target is :mod:`pipeline.latency.refine`.

Example:
  >>> alloc = Allocator(selection.planner(analysis, scores, constraints), scores)
  >>> counts = alloc.allocate(CostModel(layers, table, analysis, full_ms), 0.5 * full_ms)
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.pruning import selection
from pipeline.pruning.channels import Analysis
from pipeline.errors import TargetError
from pipeline.pruning.handlers.base import spatial
from pipeline.latency.table import CostLayer, LatencyTable, lane_width

LOOKAHEAD = 3  # rungs a single move may drop: crosses a flat stretch of the table
# Importance differences below half an average channel's (normalised scores average 1)
# count as ties in a trade, which is then taken if it lands closer to the target.
TIE = 0.5
MAX_TRADES = 64
_EPS = 1e-9


def _sum_utility(scores: np.ndarray, size: int, unit: float) -> np.ndarray:
    """Each channel is worth its score, wherever it is (HALP's objective)."""
    del size, unit
    return scores


def _log_utility(scores: np.ndarray, size: int, unit: float) -> np.ndarray:
    """The k-th channel removed is worth its score / (channels still there).

    With equal scores a group's loss is the log of the share it keeps: each
    halving of a layer costs the same, so a layer is never thinned to its
    floor for being expensive alone. ``unit`` (the mean group size) keeps an
    average channel at full width worth about 1, the scale of ``TIE``.
    """
    return scores * unit / (size - np.arange(len(scores)))


# What a removal sequence loses, per channel removed: name -> f(sorted scores, size, unit).
UTILITIES = {"sum": _sum_utility, "log": _log_utility}


class CostModel:
    """Predicted whole-model latency of a keep mask: the table's layers plus the rest.

    The rest (what the table does not time: padding, adds, pooling, copies,
    the interpreter's overhead) is the measured whole model (``full_ms``, or
    the table's ``model_ms``) minus the layers' sum at full width. It is
    spread over the output tensors of every other layer in proportion to
    their elements, and shrinks with their kept channels: in MobileNetV2 the
    rest is about 40% of the time and held constant it predicted 50% where
    64% measured. When the rest comes out negative it is held constant.
    """

    def __init__(self, layers: list[CostLayer], table: LatencyTable, analysis: Analysis,
                 full_ms: float | None = None):
        self.layers, self.table = layers, table
        timed = {l.name for l in layers}
        self.elements = [(l.outs[0], spatial(l.node.out_shapes[0])) for l in analysis.layers
                         if l.node.name not in timed and len(l.outs) == 1 and len(l.outs[0])]
        layer_sum = sum(self.table.layer_ms(l.key, *l.full) for l in layers)
        full_ms = table.model_ms if full_ms is None else full_ms
        rest = (full_ms - layer_sum) if full_ms is not None else 0.0
        size = sum(weight * len(ids) for ids, weight in self.elements)
        self.per_element = max(rest, 0.0) / size if size else 0.0
        self.rest = rest - self.per_element * size
        self.touching = _touching(analysis, [np.concatenate([l.ins, l.outs]) for l in layers]
                                  + [ids for ids, _ in self.elements])

    def layer_ms(self, li: int, keep: np.ndarray) -> float:
        """Predicted time of term ``li``: a timed layer, or a share of the rest."""
        if li < len(self.layers):
            layer = self.layers[li]
            return self.table.layer_ms(layer.key, *layer.widths(keep))
        ids, weight = self.elements[li - len(self.layers)]
        return self.per_element * weight * int(np.count_nonzero(keep[ids]))

    def group_ms(self, gi: int, keep: np.ndarray) -> float:
        """Predicted time of the terms group ``gi`` touches."""
        return sum(self.layer_ms(li, keep) for li in self.touching[gi])

    def total(self, keep: np.ndarray) -> float:
        terms = len(self.layers) + len(self.elements)
        return self.rest + sum(self.layer_ms(li, keep) for li in range(terms))

    def neighbours(self, gi: int) -> set:
        """Groups whose predicted savings change when group ``gi`` changes width."""
        layers = set(self.touching[gi])
        return {g for g, touched in enumerate(self.touching) if layers.intersection(touched)}


def _touching(analysis: Analysis, ids_per_term: list) -> list[list[int]]:
    """For each group, the terms whose channel ids include some of its channels."""
    group_of = np.full(analysis.n_ids, -1, np.int64)
    for gi, group in enumerate(analysis.groups):
        group_of[group.classes] = gi
    touching: list[list[int]] = [[] for _ in analysis.groups]
    for term, ids in enumerate(ids_per_term):
        for gi in np.unique(group_of[ids]):
            if gi >= 0:
                touching[gi].append(term)
    return touching


@dataclasses.dataclass(frozen=True)
class _Move:
    group: int
    rung: int
    delta_ms: float
    score: float


class Allocator:
    """Greedy choice of every group's width under a predicted-latency target.

    Args:
      plan: the selection planner (removal sequences, min_filters, overrides).
      scores: group name -> channel scores.
      utility: how the group-normalised scores of the channels removed add up
        to the importance lost (a name in :data:`UTILITIES`).
    """

    def __init__(self, plan, scores: dict, utility: str = "log"):
        if utility not in UTILITIES:
            raise TargetError(f"unknown latency utility '{utility}'; choose one of: "
                              f"{', '.join(UTILITIES)}")
        self.plan = plan
        self.ladders = [self._ladder(gi) for gi in range(len(plan.groups))]
        unit = float(np.mean([g.size for g in plan.groups])) if plan.groups else 1.0
        self.gain = [np.concatenate([[0.0], np.cumsum(UTILITIES[utility](
            selection.normalise(scores[g.name])[seq], g.size, unit))])
                     for g, seq in zip(plan.groups, plan.sequences)]
        self.movable = [gi for gi, ladder in enumerate(self.ladders) if len(ladder) > 1]

    def _ladder(self, gi: int) -> list[int]:
        """Allowed kept widths of group ``gi``, widest first."""
        size = self.plan.groups[gi].size
        if gi in self.plan.fixed:
            return [size - int(self.plan.fixed_counts()[gi])]
        step = self.plan.constraints.round_to
        # "auto" and 1: the lane width; the table's steps then decide (see the module doc).
        step = step if isinstance(step, int) and step > 1 else lane_width(size)
        floor = max(size - len(self.plan.sequences[gi]), 1)
        top = (size - 1) // step * step
        return [size] + [w for w in range(top, 0, -step) if w >= floor]

    def counts(self, rungs) -> np.ndarray:
        """Channels removed per group at these ladder positions."""
        return np.array([g.size - ladder[r] for g, ladder, r in
                         zip(self.plan.groups, self.ladders, rungs)], np.int64)

    def floor_counts(self) -> np.ndarray:
        return self.counts([len(ladder) - 1 for ladder in self.ladders])

    def allocate(self, cost: CostModel, target_ms: float) -> np.ndarray:
        """Counts whose predicted latency meets ``target_ms`` (or the floor if none does).

        Two greedy passes, each polished by trades: narrowing from the full
        model, and widening from the floor. The one keeping more importance
        wins (on a tie, the one predicted closer to the target). With a
        concave utility such as ``"log"`` the best allocation often spreads
        the cut over several groups, which one top-down pass, stopping at the
        first width that fits, can miss.
        """
        best = None
        for from_floor in (False, True):
            rungs, total = self._pass(cost, target_ms, from_floor)
            key = (total <= target_ms + _EPS, self.kept(self.counts(rungs)), total)
            if best is None or _better(key, best[0]):
                best = (key, rungs)
        return self.counts(best[1])

    def kept(self, counts) -> float:
        """Importance kept by ``counts``: minus what the removed channels are worth."""
        return -sum(gain[n] for gain, n in zip(self.gain, counts))

    def _pass(self, cost, target_ms, from_floor: bool) -> tuple[list[int], float]:
        """One greedy pass: rungs and predicted ms.

        From the full model, narrow while over the target (or start with every
        group at its floor); then give rungs back within the target; then trade.
        """
        rungs = [len(ladder) - 1 if from_floor else 0 for ladder in self.ladders]
        keep = self.plan.keep_mask(self.counts(rungs))
        total = cost.total(keep)
        if not from_floor:
            total = self._narrow(cost, rungs, keep, total, target_ms)
        total = self._give_back(cost, rungs, keep, total, target_ms)
        return rungs, self._trade(cost, rungs, keep, total, target_ms)

    def _narrow(self, cost, rungs, keep, total, target_ms) -> float:
        """Takes the least-importance-per-ms narrowing while over the target."""
        cache: dict[int, _Move | None] = {}
        while total > target_ms:
            for gi in self.movable:
                if gi not in cache:
                    cache[gi] = self._narrower(cost, gi, rungs[gi], keep)
            moves = [m for m in cache.values() if m is not None]
            if not moves:
                break
            move = min(moves, key=lambda m: (m.score, m.group))
            total += self._apply(move, rungs, keep)
            for gi in cost.neighbours(move.group) | {move.group}:
                cache.pop(gi, None)
        return total

    def _trade(self, cost, rungs, keep, total, target_ms) -> float:
        """Takes the best trade (see :meth:`_best_trade`) while one is left, up to MAX_TRADES."""
        for _ in range(MAX_TRADES):
            trade = self._best_trade(cost, rungs, keep, total, target_ms)
            if trade is None:
                break
            total += self._apply(trade[0], rungs, keep) + self._apply(trade[1], rungs, keep)
        return total

    def _narrower(self, cost, gi, rung, keep) -> _Move | None:
        """The best move of group ``gi`` down 1..LOOKAHEAD rungs: least importance per ms."""
        before = cost.group_ms(gi, keep)
        best = None
        for new in range(rung + 1, min(rung + LOOKAHEAD, len(self.ladders[gi]) - 1) + 1):
            saved = before - self._probe(cost, gi, rung, new, keep)
            if saved <= _EPS:
                continue
            lost = self.gain[gi][self._removed(gi, new)] - self.gain[gi][self._removed(gi, rung)]
            move = _Move(gi, new, -saved, lost / saved)
            if best is None or move.score < best.score:
                best = move
        return best

    def _give_back(self, cost, rungs, keep, total, target_ms) -> float:
        """Widens groups one rung at a time, most importance per ms first, within the target."""
        while True:
            best = None
            for gi in self.movable:
                if rungs[gi] == 0:
                    continue
                extra = self._probe(cost, gi, rungs[gi], rungs[gi] - 1, keep) - cost.group_ms(
                    gi, keep)
                if total + extra > target_ms:
                    continue
                won = (self.gain[gi][self._removed(gi, rungs[gi])]
                       - self.gain[gi][self._removed(gi, rungs[gi] - 1)])
                move = _Move(gi, rungs[gi] - 1, extra, -won / max(extra, _EPS))
                if best is None or move.score < best.score:
                    best = move
            if best is None:
                return total
            total += self._apply(best, rungs, keep)

    def _best_trade(self, cost, rungs, keep, total, target_ms):
        """The best (widen, narrow) pair of moves within the target, or None (see module doc)."""
        best, best_key = None, None
        for a in self.movable:
            if rungs[a] == 0:
                continue
            widen = self._widen(cost, a, rungs[a], keep)
            self._set(a, rungs[a], widen.rung, keep)
            for b in self.movable:
                if b == a:
                    continue
                for narrow in self._narrowings(cost, b, rungs[b], keep):
                    after = total + widen.delta_ms + narrow.delta_ms
                    key = _trade_key(-widen.score - narrow.score, after, total, target_ms)
                    if key is not None and (best_key is None or key > best_key):
                        best, best_key = (widen, narrow), key
            self._set(a, widen.rung, rungs[a], keep)
        return best

    def _widen(self, cost, gi, rung, keep) -> _Move:
        """Group ``gi`` one rung wider; ``score`` is minus the importance won."""
        extra = self._probe(cost, gi, rung, rung - 1, keep) - cost.group_ms(gi, keep)
        won = self.gain[gi][self._removed(gi, rung)] - self.gain[gi][self._removed(gi, rung - 1)]
        return _Move(gi, rung - 1, extra, -won)

    def _narrowings(self, cost, gi, rung, keep):
        """Group ``gi`` 1..LOOKAHEAD rungs narrower; ``score`` is the importance lost."""
        before = cost.group_ms(gi, keep)
        for new in range(rung + 1, min(rung + LOOKAHEAD, len(self.ladders[gi]) - 1) + 1):
            saved = before - self._probe(cost, gi, rung, new, keep)
            lost = self.gain[gi][self._removed(gi, new)] - self.gain[gi][self._removed(gi, rung)]
            yield _Move(gi, new, -saved, lost)

    def _removed(self, gi: int, rung: int) -> int:
        return self.plan.groups[gi].size - self.ladders[gi][rung]

    def _probe(self, cost, gi, rung, new, keep) -> float:
        """The group's layers' predicted time with group ``gi`` at rung ``new`` (keep restored)."""
        self._set(gi, rung, new, keep)
        after = cost.group_ms(gi, keep)
        self._set(gi, new, rung, keep)
        return after

    def _apply(self, move: _Move, rungs, keep) -> float:
        self._set(move.group, rungs[move.group], move.rung, keep)
        rungs[move.group] = move.rung
        return move.delta_ms

    def _set(self, gi, rung, new, keep) -> None:
        """Updates ``keep`` for group ``gi`` moving from rung ``rung`` to ``new``."""
        a, b = sorted((self._removed(gi, rung), self._removed(gi, new)))
        group, seq = self.plan.groups[gi], self.plan.sequences[gi]
        keep[group.classes[seq[a:b]]] = new < rung


def _better(a: tuple, b: tuple) -> bool:
    """Allocation keys (meets target, importance kept, predicted ms): is ``a`` better?"""
    if a[0] != b[0]:
        return a[0]
    if abs(a[1] - b[1]) > TIE:
        return a[1] > b[1]
    if abs(a[2] - b[2]) <= _EPS:
        return False
    return a[2] > b[2] if a[0] else a[2] < b[2]


def _trade_key(gain: float, after: float, total: float, target_ms: float):
    """Rank of a trade: more importance first, then ties that land closer; None if not taken."""
    if after > target_ms:
        return None
    if gain > TIE:
        return (1, gain)
    if gain >= -TIE and after > total + _EPS:
        return (0, after)
    return None
