"""The public verbs: plan a pruning, prune, and replay a plan.

Each takes a :class:`~pipeline.PruneConfig` (or a ratio, with the config's
fields as keywords for convenience) and a built Keras 3 or tf_keras model, which it
leaves unchanged.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.config import PruneConfig
from pipeline.latency import refine  # noqa: F401  (registers target="latency")
from pipeline.latency import steps
from pipeline.pruning import criteria, targets
from pipeline.pruning.channels import analyse
from pipeline.pruning.plan import PrunePlan, check_fits, make_plan
from pipeline.pruning.rebuild import rebuild


@dataclasses.dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` made: the narrower model (None on a dry run) and its plan."""

    model: Any
    plan: PrunePlan


def plan_pruning(model, config: PruneConfig | float | None = None, *, data=None,
                 **keywords: Any) -> PrunePlan:
    """Decides which channels to remove, without returning a model (a dry run).

    Arguments are those of :func:`prune`. With ``target="latency"`` candidate
    models are still built and timed (that is how the budget is checked).

    Returns:
      The :class:`PrunePlan`; ``plan.settings == config.to_dict()``,
      ``plan.alignment`` says what ``round_to="auto"`` resolved to per group,
      and ``print(plan.summary_table())`` shows it.
    """
    config = PruneConfig.of(config, **keywords)
    analysis = analyse(model, config.ignore)
    context = criteria.Context(model=model, data=data, seed=config.seed)
    scores = criteria.score(analysis, config.criterion, context)
    target = targets.get(config.target)
    constraints = config.constraints
    if config.round_to == "auto" and config.latency is not None and config.target != "latency":
        constraints = dataclasses.replace(constraints,
                                          ladders=steps.ladders(analysis, config.latency))
    chosen = target.select(targets.Request(model, analysis, scores, config.ratio, config.scope,
                                           constraints, config.latency))
    return make_plan(analysis, chosen.selection.kept, config.to_dict(),
                     chosen.selection.removed, chosen.report, chosen.selection.alignment)


def prune(model, config: PruneConfig | float | None = None, *, data=None,
          dry_run: bool = False, **keywords: Any) -> PruneResult:
    """Removes filters from a Keras 3 or tf_keras model and rebuilds it narrower, in its Keras.

    Args:
      model: a built functional or Sequential model of either Keras (left unchanged).
      config: a :class:`~pipeline.PruneConfig`, or the ratio to remove (the
        fraction of ``target``, in [0, 1)); None = ``PruneConfig()`` (half the MACs).
      data: ``(images, labels)`` batches, needed by ``criterion="taylor"``.
      dry_run: plan only; ``result.model`` is None.
      **keywords: PruneConfig fields replacing the config's (``target``,
        ``criterion``, ``scope``, ``round_to``, ``min_filters``, ``ignore``,
        ``ratios``, ``seed``, ``latency``); see :class:`~pipeline.PruneConfig`.

    Returns:
      A :class:`PruneResult` with ``.model`` and ``.plan``. For
      ``target="latency"``, ``plan.report`` holds the budget, predicted and
      measured milliseconds and the rounds.

    Raises:
      UnsupportedModelError, UnsupportedLayerError: the model can't be analysed.
      TargetError: bad ratio/target/scope or an unreachable target (for
        latency: no round measured within the tolerance of the budget).
      RegistryError: unknown criterion.

    Example:
      >>> import pipeline, tf_keras
      >>> model = tf_keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
      >>> result = pipeline.prune(model, pipeline.PruneConfig(ratio=0.5, criterion="l1"))
      >>> pipeline.count_macs(result.model) < 0.52 * pipeline.count_macs(model)
      True
      >>> same = pipeline.prune(model, 0.5, criterion="l1")  # keywords for convenience
      >>> fast = pipeline.prune(model, 0.5, target="latency",
      ...                       latency=pipeline.LatencyConfig(cache_dir="/tmp/latency"))
      >>> fast.plan.report["measured_ms"] <= 1.05 * fast.plan.report["budget_ms"]
      True
    """
    plan = plan_pruning(model, config, data=data, **keywords)
    return PruneResult(None if dry_run else apply_plan(model, plan), plan)


def apply_plan(model, plan: PrunePlan):
    """Replays ``plan`` on the model it was made from and returns the narrower model.

    Raises:
      PlanError: the plan's groups don't match the model's.
    """
    analysis = analyse(model, plan.settings.get("ignore", ()))
    check_fits(plan, analysis)
    return rebuild(model, analysis, analysis.keep_mask(plan.kept()))
