"""A latency table's speed steps as the widths each group may keep (``round_to="auto"``).

The per-layer table that ``target="latency"`` measures (:mod:`pipeline.latency.table`)
shows where a layer gets faster as its output channels go: on this CPU in
steps of 32 (48 output channels cost as much as 64). For ``round_to="auto"``
with a table, a group's *ladder* is read from the output-channel curves of
the layers that produce or carry its channels (convs, depthwise convs):

* candidates: the widths the table measured on that axis, and the lane-width
  rule's widths (:func:`pipeline.pruning.lanes.ladder`) where the table is
  coarse (its points between two measured widths are interpolated);
* from the full width down, a candidate is a step when it saves at least
  :data:`STEP_SHARE` of its share of the channels against the last step kept
  (48 of 64 channels is 25% fewer; it counts only if it is at least 12.5%
  faster), so widths on a flat stretch of the table are not kept.

Groups that no table layer covers keep the rule. Nothing is measured here:
the table is a device file (``LatencyConfig.table``) or the host table
cached by an earlier latency-targeted run (``LatencyConfig.cache_dir``); with
neither, the rule holds for every group.

Example:
  >>> ladders(analysis, LatencyConfig(cache_dir="bench/results/latency_tables"))
  (('block_1_expand', (16, 32, 64, 96)), ...)
"""
from __future__ import annotations

import os

import numpy as np

from pipeline.latency import measure
from pipeline.latency.config import LatencyConfig
from pipeline.latency.table import (LatencyTable, LatencyTableError, architecture,
                                    cost_layers, read_cache)
from pipeline.pruning import lanes
from pipeline.pruning.channels import Analysis

STEP_SHARE = 0.5  # a narrower width must save at least half of its share of channels


def read_table(analysis: Analysis, config: LatencyConfig) -> LatencyTable | None:
    """The device table, or this host's cached table of this model; None if there is none.

    Raises:
      LatencyTableError: a device table (``config.table``) is unreadable.
    """
    if config.table:
        try:
            with open(config.table) as f:
                return LatencyTable.from_json(f.read(), config.table)
        except OSError as e:
            raise LatencyTableError(f"latency table {config.table}: {e}; pass a file written "
                                    "by `python -m pipeline.latency.grid assemble`") from e
    if not config.cache_dir:
        return None
    return read_cache(os.path.join(config.cache_dir, measure.host_device(),
                                   f"{architecture(analysis)}.json"))


def ladders(analysis: Analysis, config: LatencyConfig) -> tuple:
    """``(group name, kept widths)`` for every group the table covers; () without a table."""
    table = read_table(analysis, config)
    if table is None:
        return ()
    layers = [l for l in cost_layers(analysis, np.ones(analysis.n_ids, bool), config.grid)
              if l.key in table.layers]
    result = []
    for group in analysis.groups:
        curves = [l for l in layers if _carries(l, group)]
        if curves:
            result.append((group.name, ladder(group.size, curves, table)))
    return tuple(result)


def ladder(size: int, layers: list, table: LatencyTable) -> tuple[int, ...]:
    """The speed steps of a group of ``size`` channels along these layers' output curves."""
    candidates = set(lanes.ladder(size, lanes.auto_step(size)))
    for layer in layers:
        entry = table.layers[layer.key]
        full_in = entry["full"][0]
        candidates |= {int(p[0] if entry["tied"] else p[1]) for p in entry["points"]
                       if entry["tied"] or p[0] == full_in}
    candidates = sorted((w for w in candidates if 0 < w < size), reverse=True)
    cost = {w: _cost(w, layers, table) for w in candidates + [size]}
    kept = [size]
    for width in candidates:
        last = kept[-1]
        if cost[width] <= cost[last] * (1 - STEP_SHARE * (last - width) / last):
            kept.append(width)
    return tuple(sorted(kept))


def _carries(layer, group) -> bool:
    """The layer's output channels are exactly the group's (so its output curve is the group's)."""
    outs = np.unique(layer.outs)
    return len(outs) == group.size and bool(np.isin(outs, group.classes).all())


def _cost(width: int, layers: list, table: LatencyTable) -> float:
    total = 0.0
    for layer in layers:
        n_in, n_out = layer.full
        total += (table.layer_ms(layer.key, width, layer.out_for(width)) if layer.tied
                  else table.layer_ms(layer.key, n_in, width))
    return total
