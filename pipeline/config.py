"""What a pruning asks for, as one frozen, validated, serialisable value: :class:`PruneConfig`.

``pipeline.prune(model, PruneConfig(ratio=0.5))`` and the run layer (which
builds one from its config file) share it, and a plan records it:
``plan.settings == config.to_dict()`` (a latency target's measurements go to
``plan.report``), so :meth:`PruneConfig.from_dict` rebuilds the request
that made a plan.

Example:
  >>> config = PruneConfig(ratio=0.5, target="macs", criterion="l1", round_to=8)
  >>> PruneConfig().round_to  # each group on its speed steps
  'auto'
  >>> PruneConfig.from_dict(config.to_dict()) == config
  True
  >>> config.replace(ratio=0.7).ratio
  0.7
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from pipeline.errors import TargetError
from pipeline.latency.config import LatencyConfig
from pipeline.pruning import criteria, lanes, selection, targets


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """How to prune.

    Attributes:
      ratio: fraction of ``target`` to remove, in [0, 1).
      target: what ``ratio`` is a fraction of: ``"macs"`` (multiply-accumulates),
        ``"filters"`` (prunable channels, each coupled group counted once) or
        ``"latency"`` (LiteRT latency, measured on this host in the 1-thread
        edge profile or read from a device table); see
        :func:`pipeline.pruning.targets.names`.
      criterion: importance criterion: l1, l2, bn_gamma, fpgm, taylor, random
        (see :func:`pipeline.criterion_names`).
      scope: ``"global"`` (one normalised ranking) or ``"layer"`` (the same
        fraction of every group).
      round_to: ``"auto"`` (the default): each group keeps widths on this
        device's speed steps, read from a latency table when ``latency`` names
        one (``table=`` or a ``cache_dir`` holding this model's host table),
        else from the lane-width rule by group width (32 for groups of 64
        channels or more, 16, 8, 4, 1 below; finer when the coarser cannot
        reach the target; :mod:`pipeline.pruning.lanes`). An integer: kept
        counts are multiples of it (or the full width), exactly.
      min_filters: the fewest channels any layer keeps.
      ignore: layer names or fnmatch patterns whose channels stay intact.
      ratios: per-layer overrides, name pattern -> fraction removed (given as
        a mapping or as pairs; stored as sorted pairs).
      seed: for the ``random`` criterion.
      latency: a :class:`LatencyConfig` for ``target="latency"`` (None there
        becomes its defaults); for the other targets only with
        ``round_to="auto"``, as the source of its table (read, never measured).

    Raises:
      TargetError: a value out of range, an unknown target or scope, or
        ``latency`` settings with another target.
      RegistryError: an unknown criterion.
    """

    ratio: float = 0.5
    target: str = "macs"
    criterion: str = "l1"
    scope: str = "global"
    round_to: int | str = "auto"
    min_filters: int = 1
    ignore: tuple[str, ...] = ()
    ratios: tuple[tuple[str, float], ...] = ()
    seed: int = 0
    latency: LatencyConfig | None = None

    def __post_init__(self):
        self._normalise()
        if not 0 <= self.ratio < 1:
            raise TargetError(f"prune ratio must be in [0, 1), got {self.ratio}", argument="ratio")
        targets.get(self.target)
        selection.check_scope(self.scope)
        criteria.get_criterion(self.criterion)
        selection.Constraints(self.min_filters, self.round_to, self.ratios)  # their checks
        if self.latency is not None and self.target != "latency" and self.round_to != "auto":
            raise TargetError(f"latency= settings need target='latency' (or round_to='auto', "
                              f"which reads their table), not target='{self.target}' with "
                              f"round_to={self.round_to}", argument="latency")
        if self.target == "latency" and self.latency is None:
            object.__setattr__(self, "latency", LatencyConfig())

    def _normalise(self) -> None:
        """Plain, hashable field values: a str ignore becomes a 1-tuple, ratios sorted pairs."""
        ignore = (self.ignore,) if isinstance(self.ignore, str) else tuple(self.ignore)
        ratios = self.ratios.items() if isinstance(self.ratios, Mapping) else self.ratios
        try:
            round_to = lanes.check(self.round_to)
        except ValueError as e:
            raise TargetError(str(e), argument="round_to") from e
        values = {"ratio": float(self.ratio), "round_to": round_to,
                  "min_filters": int(self.min_filters), "seed": int(self.seed),
                  "ignore": tuple(str(p) for p in ignore),
                  "ratios": tuple(sorted((str(k), float(v)) for k, v in ratios))}
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def constraints(self) -> selection.Constraints:
        """The selection limits this config sets."""
        return selection.Constraints(self.min_filters, self.round_to, self.ratios)

    def replace(self, **changes: Any) -> "PruneConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready settings; ``latency`` appears only for ``target="latency"``."""
        body = {"ratio": self.ratio, "target": self.target, "criterion": self.criterion,
                "scope": self.scope, "round_to": self.round_to, "min_filters": self.min_filters,
                "ignore": list(self.ignore), "ratios": dict(self.ratios), "seed": self.seed}
        if self.latency is not None:
            body["latency"] = self.latency.to_dict()
        return body

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> "PruneConfig":
        """The inverse of :meth:`to_dict`; also reads a plan's ``settings``.

        Keys a plan adds beyond the request (``iterations`` of a composed plan)
        are ignored.
        """
        fields = {f.name for f in dataclasses.fields(cls)} - {"latency"}
        values = {k: v for k, v in settings.items() if k in fields}
        if settings.get("latency") is not None:
            values["latency"] = LatencyConfig.from_dict(settings["latency"])
        return cls(**values)

    @classmethod
    def of(cls, config: "PruneConfig | float | None" = None, **keywords: Any) -> "PruneConfig":
        """``config`` itself, a ratio, or the defaults, with ``keywords`` replacing fields.

        Raises:
          TargetError: ``config`` is neither a PruneConfig, a number nor None.
        """
        if isinstance(config, cls):
            return config.replace(**keywords) if keywords else config
        if config is None:
            return cls(**keywords)
        if isinstance(config, (int, float)) and not isinstance(config, bool):
            return cls(ratio=float(config), **keywords)
        raise TargetError(f"expected a PruneConfig or a ratio, got {type(config).__name__}",
                          argument="config")
