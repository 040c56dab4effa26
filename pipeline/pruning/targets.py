"""Pruning targets by name: what ``ratio`` is a fraction of, and how channels are chosen for it.

A target names a quantity of the model (MACs, prunable filters, measured
latency) and the selector that removes ``ratio`` of it. ``macs`` and
``filters`` are selected here by :func:`pipeline.pruning.selection.select`;
``latency`` registers itself from :mod:`pipeline.latency.refine`, which
measures candidate models (the library below it never imports LiteRT).

Example:
  >>> from pipeline.pruning import targets
  >>> targets.names()
  ['filters', 'latency', 'macs']
  >>> targets.get("macs").amount(model, analysis)  # the model's MACs
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from pipeline.errors import RegistryError, TargetError
from pipeline.pruning import selection
from pipeline.pruning.channels import Analysis
from pipeline.pruning.counting import count_macs
from pipeline.registry import Registry


@dataclasses.dataclass(frozen=True)
class Request:
    """What a target's selector is given.

    Attributes:
      model: the model being pruned.
      analysis: its channel analysis.
      scores: group name -> importance of each of its channels.
      ratio: fraction of the target to remove, in [0, 1).
      scope: ``"global"`` or ``"layer"``.
      constraints: min_filters, round_to and per-layer ratios.
      options: the target's own settings (a LatencyConfig for ``latency``), or None.
    """

    model: Any
    analysis: Analysis
    scores: dict
    ratio: float
    scope: str
    constraints: selection.Constraints
    options: Any = None


@dataclasses.dataclass(frozen=True)
class Chosen:
    """A selector's answer: the channels kept and, for a measured target, its report."""

    selection: selection.Selection
    report: dict | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    """One target.

    Attributes:
      name: its name in configs and ``PruneConfig.target``.
      select: ``Request -> Chosen``.
      amount: ``(model, analysis) -> float``, the quantity in a model (how
        iterative pruning splits ``ratio`` into steps).
      options: the type of the target's own settings, or None if it takes none.
    """

    name: str
    select: Callable[[Request], Chosen]
    amount: Callable[[Any, Analysis], float]
    options: type | None = None


_TARGETS: Registry[Target] = Registry("target")


def register(target: Target) -> Target:
    """Adds a target.

    Raises:
      RegistryError: its name is taken.
    """
    return _TARGETS.add(target.name, target)


def get(name: str) -> Target:
    """The target called ``name``.

    Raises:
      TargetError: unknown name; the message lists the valid ones.
    """
    try:
        return _TARGETS.get(name)
    except RegistryError as e:
        raise TargetError(str(e), argument="target") from e


def names() -> list[str]:
    """Every registered target, sorted."""
    return _TARGETS.names()


def _counted(name: str) -> Callable[[Request], Chosen]:
    def select(request: Request) -> Chosen:
        return Chosen(selection.select(request.analysis, request.scores, request.ratio, name,
                                       request.scope, request.constraints))
    return select


def _filters(model, analysis: Analysis) -> float:
    del model
    return float(sum(g.size for g in analysis.groups))


def _macs(model, analysis: Analysis) -> float:
    del analysis
    return float(count_macs(model))


register(Target("macs", _counted("macs"), _macs))
register(Target("filters", _counted("filters"), _filters))
