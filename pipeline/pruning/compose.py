"""Iterative pruning in the library: the ratio of each step, and one plan for all the steps.

Pruning to ``R`` in ``k`` steps removes the same share of what is left at
every step. :func:`step_ratio` says how much step ``i`` removes from the model
it is given; :func:`compose` chains the steps' plans into one plan from the
original model to the last step's architecture.

Example:
  >>> full = targets.get("macs").amount(model, analyse(model))
  >>> ratio = step_ratio(full, current_model, 0.5, i=1, k=2, target="macs")
  >>> plan = compose(model, [plan_1, plan_2], 0.5)
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from pipeline.errors import PlanError
from pipeline.pruning import targets
from pipeline.pruning.channels import analyse
from pipeline.pruning.plan import PrunePlan, make_plan


def amount(model, target: str, ignore: Sequence[str] = ()) -> float:
    """What ``target`` counts in ``model`` (its MACs, its prunable filters...)."""
    return targets.get(target).amount(model, analyse(model, tuple(ignore)))


def step_ratio(full: float, model, ratio: float, i: int, k: int, target: str,
               ignore: Sequence[str] = ()) -> float:
    """The fraction step ``i`` of ``k`` removes from ``model`` so that the steps compound to ``ratio``.

    Step ``i`` aims at ``(1 - ratio) ** (i / k)`` of the original ``full``
    amount, measured from the model actually reached, so a step that lands a
    little off its target is corrected by the next and the last lands on
    ``ratio`` itself.

    Args:
      full: the original model's amount of ``target`` (:func:`amount`).
      model: the model step ``i`` starts from.
      ratio: the overall fraction to remove.
      i, k: the step (1-based) and the number of steps.
      target, ignore: as in :class:`pipeline.PruneConfig`.
    """
    if k == 1:
        return float(ratio)
    goal = full * (1 - ratio) ** (i / k)
    return max(0.0, 1 - goal / amount(model, target, ignore))


def compose(model, plans: Sequence[PrunePlan], ratio: float,
            ignore: Sequence[str] = ()) -> PrunePlan:
    """One plan from ``model`` to the last step's architecture: the steps' kept indices chained.

    Layer names, hence group names, survive a rebuild, so step ``i``'s kept
    indices index into step ``i - 1``'s. The plan's settings are the last
    step's with the overall ``ratio`` and ``iterations``; ``removed`` is measured.

    Raises:
      PlanError: a step's groups are not the previous step's.
    """
    analysis = analyse(model, tuple(ignore))
    kept = {g.name: np.arange(g.size) for g in analysis.groups}
    for i, plan in enumerate(plans, 1):
        step = plan.kept()
        sizes = {g.name: g.size for g in plan.groups}
        if sizes != {n: len(indices) for n, indices in kept.items()}:
            raise PlanError(f"cannot compose the pruning steps: step {i}'s groups "
                            f"{sorted(step)[:5]} do not match the previous model's")
        kept = {n: kept[n][step[n]] for n in kept}
    settings = dict(plans[-1].settings, ratio=float(ratio), iterations=len(plans))
    composed = make_plan(analysis, kept, settings, {}, alignment=plans[-1].alignment)
    macs = 1 - composed.macs_after / max(composed.macs_before, 1)
    filters = 1 - sum(len(g.keep) for g in composed.groups) / max(
        sum(g.size for g in composed.groups), 1)
    return dataclasses.replace(composed, removed={"filters": filters, "macs": macs})
