"""The run's ``config.prune`` section as the library's :class:`pipeline.PruneConfig`.

The one place where the config file's prune keys meet the library's
arguments; the stages and the preflight checks both build their request here.
"""
from __future__ import annotations

import os

from pipeline.config import PruneConfig
from pipeline.latency.config import LatencyConfig

# prune.latency keys passed on; the rest of LatencyConfig keeps its defaults.
LATENCY_KEYS = ("table", "tolerance", "max_iterations", "utility")


def prune_config(section, seed: int, cache_dir: str = "", **changes) -> PruneConfig:
    """``config.prune`` (a ConfigDict) as a PruneConfig.

    ``prune.round_to`` may be an int, ``"auto"`` or an int as a string (a
    string field overridden as ``--config.prune.round_to=16``); PruneConfig
    reads all three.

    Args:
      section: the ``config.prune`` section.
      seed: the run's seed.
      cache_dir: where ``target="latency"`` caches its host tables ('' = memory).
      **changes: fields replacing the section's (e.g. one iterative step's ratio).

    Raises:
      TargetError, RegistryError: a value the library refuses.
    """
    latency = None
    given = section.get("latency") or {}
    round_to = changes.get("round_to", section.round_to)
    if section.target == "latency":
        latency = LatencyConfig(cache_dir=cache_dir,
                                **{k: given[k] for k in LATENCY_KEYS if k in given})
    elif str(round_to).strip().lower() == "auto":
        # round_to="auto" reads a table: a device file, or one a latency run cached here.
        # Only a cache that exists is named: the plan records it, and a run without one
        # keeps a plan that no workdir path makes differ from another run's.
        cached = cache_dir if cache_dir and os.path.isdir(cache_dir) else ""
        if cached or given.get("table"):
            latency = LatencyConfig(cache_dir=cached, table=given.get("table") or "")
    values = dict(ratio=section.ratio, target=section.target, criterion=section.criterion,
                  scope=section.scope, round_to=section.round_to,
                  min_filters=section.min_filters, ignore=tuple(section.ignore),
                  ratios=dict(section.get("ratios") or {}), seed=seed, latency=latency)
    values.update(changes)
    return PruneConfig(**values)
