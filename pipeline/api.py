"""The public verbs: plan a pruning, prune, and replay a plan."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from pipeline.pruning import criteria
from pipeline.latency import refine as latency_select
from pipeline.pruning.channels import analyse
from pipeline.errors import TargetError
from pipeline.latency.table import LatencyConfig
from pipeline.pruning.plan import PrunePlan, check_fits, make_plan
from pipeline.pruning.rebuild import rebuild
from pipeline.pruning.selection import Constraints, select


@dataclasses.dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` made: the narrower model (None on a dry run) and its plan."""

    model: Any
    plan: PrunePlan


def plan_pruning(model, ratio: float, *, target: str = "macs", criterion: str = "l1",
                 scope: str = "global", round_to: int = 1, min_filters: int = 1,
                 ignore: Sequence[str] = (), ratios: Mapping[str, float] | None = None,
                 data=None, seed: int = 0, latency: LatencyConfig | None = None) -> PrunePlan:
    """Decides which channels to remove, without returning a model (a dry run).

    Arguments are those of :func:`prune`. With ``target="latency"`` candidate
    models are still built and timed (that is how the budget is checked).

    Returns:
      The :class:`PrunePlan`; ``print(plan.summary_table())`` shows it.
    """
    constraints = Constraints(int(min_filters), int(round_to),
                              tuple(sorted((ratios or {}).items())))
    criteria.get_criterion(criterion)  # fail on a bad name before the analysis
    analysis = analyse(model, ignore)
    context = criteria.Context(model=model, data=data, seed=seed)
    scores = criteria.score(analysis, criterion, context)
    if target == "latency":
        chosen, report = latency_select.select_latency(model, analysis, scores, float(ratio),
                                                       scope, constraints,
                                                       latency or LatencyConfig())
    elif latency is not None:
        raise TargetError(f"latency= settings need target='latency', not '{target}'")
    else:
        chosen = select(analysis, scores, float(ratio), target, scope, constraints)
    settings = {"ratio": float(ratio), "target": target, "criterion": criterion, "scope": scope,
                "round_to": int(round_to), "min_filters": int(min_filters),
                "ignore": list(ignore) if not isinstance(ignore, str) else [ignore],
                "ratios": dict(sorted((ratios or {}).items())), "seed": int(seed)}
    if target == "latency":
        settings["latency"] = report.to_dict()
    return make_plan(analysis, chosen.kept, settings, chosen.removed)


def prune(model, ratio: float, *, target: str = "macs", criterion: str = "l1",
          scope: str = "global", round_to: int = 1, min_filters: int = 1,
          ignore: Sequence[str] = (), ratios: Mapping[str, float] | None = None,
          data=None, seed: int = 0, dry_run: bool = False,
          latency: LatencyConfig | None = None) -> PruneResult:
    """Removes filters from a tf_keras model and rebuilds it narrower.

    Args:
      model: a built functional or Sequential tf_keras model (left unchanged).
      ratio: fraction of ``target`` to remove, in [0, 1).
      target: ``"macs"`` (multiply-accumulates removed), ``"filters"``
        (prunable channels removed, each coupled group counted once) or
        ``"latency"`` (LiteRT latency removed, measured in the 1-thread edge
        profile or read from a device table; see :mod:`pipeline.latency.refine`).
      criterion: importance criterion name: l1, l2, bn_gamma, fpgm, taylor, random.
      scope: ``"global"`` (one normalised ranking) or ``"layer"`` (same
        fraction per group).
      round_to: keep channel counts multiples of this (SIMD-friendly widths).
      min_filters: the fewest channels any layer keeps.
      ignore: layer names or fnmatch patterns whose channels stay intact.
      ratios: per-layer overrides, name pattern -> fraction removed.
      data: ``(images, labels)`` batches, needed by ``taylor``.
      seed: for ``random``.
      dry_run: plan only; ``result.model`` is None.
      latency: a :class:`LatencyConfig` for ``target="latency"`` (table
        cache directory, device table, tolerance, rounds); None = defaults.
        The plan's ``settings["latency"]`` reports budget, predicted and
        measured milliseconds.

    Returns:
      A :class:`PruneResult` with ``.model`` and ``.plan``.

    Raises:
      UnsupportedModelError, UnsupportedLayerError: the model can't be analysed.
      TargetError: bad ratio/target/scope or an unreachable target (for
        latency: no round measured within the tolerance of the budget).
      RegistryError: unknown criterion.

    Example:
      >>> import pipeline, tf_keras
      >>> model = tf_keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
      >>> result = pipeline.prune(model, 0.5, target="macs", criterion="l1")
      >>> pipeline.count_macs(result.model) < 0.52 * pipeline.count_macs(model)
      True
      >>> fast = pipeline.prune(model, 0.5, target="latency",
      ...                       latency=pipeline.LatencyConfig(cache_dir="/tmp/latency"))
      >>> report = fast.plan.settings["latency"]
      >>> report["measured_ms"] <= 1.05 * report["budget_ms"]
      True
    """
    plan = plan_pruning(model, ratio, target=target, criterion=criterion, scope=scope,
                        round_to=round_to, min_filters=min_filters, ignore=ignore,
                        ratios=ratios, data=data, seed=seed, latency=latency)
    return PruneResult(None if dry_run else apply_plan(model, plan), plan)


def apply_plan(model, plan: PrunePlan):
    """Replays ``plan`` on the model it was made from and returns the narrower model.

    Raises:
      PlanError: the plan's groups don't match the model's.
    """
    analysis = analyse(model, plan.settings.get("ignore", ()))
    check_fits(plan, analysis)
    return rebuild(model, analysis, analysis.keep_mask(plan.kept()))
