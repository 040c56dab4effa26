"""Per-layer latency tables: what each costly layer costs at a grid of channel counts.

A *costly layer* is a layer with MACs (Conv, DepthwiseConv, SeparableConv,
Dense...) that one of the prunable groups touches, on its input or output.
Its latency depends on both widths, so the table keys every layer by a
*signature* (class, config without name or widths, input and output shapes:
identical layers share one entry) and stores points ``(c_in, c_out, ms)``:

* along the output axis at the full input width and along the input axis at
  the full output width. A width pair in between is predicted as
  ``f_in(c_in) * f_out(c_out) / f(full)`` (each curve piecewise linear): a
  conv's time is close to proportional to ``c_in * c_out``.
* a *tied* layer (depthwise: its output channels are its input channels)
  has one curve over ``c_in``.

The grid is coarse: every multiple of the SIMD-friendly :func:`lane_width`
on narrow axes, else ``grid`` fractions of the axis' prunable range snapped
to such multiples, plus the full and smallest widths. On this host every
point is a one-layer ``.tflite`` timed in the edge profile
(:mod:`pipeline.latency.measure`); the whole model is timed
by the allocator, not stored. A table measured on a device is read from JSON
(the format is :meth:`LatencyTable.to_json`'s, with the whole model's
``model_ms`` there; see the README).

Example:
  >>> layers = cost_layers(analysis, floor_keep)
  >>> table = table_for(analysis, layers, LatencyConfig(cache_dir="workdir/latency"))
  >>> table.layer_ms(layers[0].key, 32, 64)
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os

import numpy as np

from pipeline import atomic
from pipeline.latency import measure
from pipeline.latency.config import DEFAULT_GRID, LatencyConfig
from pipeline.pruning.channels import Analysis
from pipeline.errors import PruningError, TargetError
from pipeline.fingerprint import fingerprint

FORMAT_VERSION = 1
DENSE = 8  # axes with at most this many lane multiples are measured at every one


_LOG = logging.getLogger(__name__)


class LatencyTableError(PruningError):
    """A latency table file is unreadable or lacks layers of the model."""


def lane_width(n: int) -> int:
    """The width step assumed SIMD-friendly for ``n`` channels (16, 8, 4 or 1)."""
    for lane, at_least in ((16, 64), (8, 16), (4, 8)):
        if n >= at_least:
            return lane
    return 1


@dataclasses.dataclass(frozen=True, eq=False)
class CostLayer:
    """One costly layer: its channel ids, signature and the points the table needs."""

    name: str
    key: str
    class_name: str
    ins: np.ndarray
    outs: np.ndarray
    tied: bool
    in_grid: tuple
    out_grid: tuple
    node: object
    handler: object

    @property
    def full(self) -> tuple[int, int]:
        return len(self.ins), len(self.outs)

    def out_for(self, n_in: int) -> int:
        """A tied layer's output width for ``n_in`` inputs (depth multiplier)."""
        return n_in * len(self.outs) // max(len(self.ins), 1)

    def points(self) -> list[tuple[int, int]]:
        n_in, n_out = self.full
        if self.tied:
            return [(i, self.out_for(i)) for i in self.in_grid]
        return sorted({(i, n_out) for i in self.in_grid} | {(n_in, o) for o in self.out_grid})

    def widths(self, keep: np.ndarray) -> tuple[int, int]:
        return int(np.count_nonzero(keep[self.ins])), int(np.count_nonzero(keep[self.outs]))


def cost_layers(analysis: Analysis, floor: np.ndarray,
                grid: tuple = DEFAULT_GRID) -> list[CostLayer]:
    """The costly layers of ``analysis`` that pruning can narrow.

    Args:
      analysis: the model's channel analysis.
      floor: keep mask with every group at its narrowest allowed width (the
        grid spans from there to the full width).
      grid: fractions of each axis' range to measure.
    """
    prunable = np.zeros(analysis.n_ids, bool)
    for group in analysis.groups:
        prunable[group.classes] = True
    layers = []
    for layer in analysis.layers:
        if len(layer.ins) != 1 or len(layer.outs) != 1 or "#" in layer.node.name:
            continue
        ins, outs = layer.ins[0], layer.outs[0]
        if not (prunable[ins].any() or prunable[outs].any()):
            continue
        if not layer.handler.macs(layer.node, len(ins), len(outs)):
            continue
        tied = bool(np.isin(np.unique(outs), np.unique(ins)).all())
        layers.append(CostLayer(
            layer.node.name, _signature(layer), layer.node.class_name, ins, outs, tied,
            _axis_grid(len(ins), int(np.count_nonzero(floor[ins])), grid),
            _axis_grid(len(outs), int(np.count_nonzero(floor[outs])), grid),
            layer.node, layer.handler))
    return layers


def _signature(layer) -> str:
    config = layer.node.layer.get_config()
    layer.handler.edit_config(config, layer.node, [0], [0])  # widths are the table's axes
    config.pop("name", None)
    return layer.node.class_name + "-" + fingerprint(
        layer.node.class_name, config, layer.node.in_shapes[0], layer.node.out_shapes[0])


def _axis_grid(full: int, low: int, grid: tuple) -> tuple:
    """Widths to measure on an axis of ``full`` positions that may narrow to ``low``.

    Every multiple of the lane width when there are at most ``DENSE`` of them
    (XNNPACK's speed steps can be wider than the lane: here 48 output channels
    cost as much as 64), else the ``grid`` fractions snapped to the lane.
    """
    low = max(1, min(low, full))
    lane = lane_width(full)
    points = {full, low}
    multiples = range(-(-low // lane) * lane, full + 1, lane)
    if len(multiples) <= DENSE:
        return tuple(sorted(points.union(multiples)))
    for fraction in grid:
        width = low + fraction * (full - low)
        snapped = int(round(width / lane)) * lane
        points.add(snapped if low <= snapped <= full else int(round(width)))
    return tuple(sorted(points))


class LatencyTable:
    """Measured per-layer latencies of one model on one device.

    Attributes:
      device: where it was measured (e.g. :func:`host_device`, or a phone's name).
      model_ms: the whole model's latency there, or None.
      layers: signature -> ``{"class", "full": [c_in, c_out], "tied", "points":
        [[c_in, c_out, ms], ...]}``.
      model: the architecture fingerprint it was measured for ('' = any).
    """

    def __init__(self, device: str, layers: dict, model_ms: float | None = None,
                 model: str = ""):
        self.device, self.layers, self.model_ms, self.model = device, layers, model_ms, model
        self._curves: dict = {}

    def has(self, key: str, point: tuple[int, int]) -> bool:
        entry = self.layers.get(key)
        return entry is not None and any(p[0] == point[0] and p[1] == point[1]
                                         for p in entry["points"])

    def add(self, layer: CostLayer, point: tuple[int, int], ms: float) -> None:
        entry = self.layers.setdefault(layer.key, {
            "class": layer.class_name, "full": list(layer.full), "tied": layer.tied,
            "points": []})
        entry["points"].append([int(point[0]), int(point[1]), float(ms)])
        entry["points"].sort()
        self._curves.pop(layer.key, None)

    def layer_ms(self, key: str, n_in: int, n_out: int) -> float:
        """Predicted latency (ms) of the layer with signature ``key`` at these widths."""
        if key not in self._curves:
            self._curves[key] = _Curves(self.layers[key])
        return self._curves[key](n_in, n_out)

    def to_json(self) -> str:
        body = {"format": FORMAT_VERSION, "device": self.device, "model": self.model,
                "model_ms": self.model_ms, "layers": self.layers}
        return json.dumps(body, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "table") -> "LatencyTable":
        """Reads a table written by :meth:`to_json` or measured on a device.

        Raises:
          LatencyTableError: not JSON, another format, or malformed points.
        """
        try:
            body = json.loads(text)
            if body.get("format") != FORMAT_VERSION:
                raise LatencyTableError(f"{source}: latency table format {body.get('format')!r} "
                                        f"is not {FORMAT_VERSION}")
            layers = {str(k): {"class": str(v.get("class", "")), "full": [int(x) for x in v["full"]],
                               "tied": bool(v.get("tied", False)),
                               "points": sorted([int(i), int(o), float(ms)]
                                                for i, o, ms in v["points"])}
                      for k, v in body["layers"].items()}
            model_ms = body.get("model_ms")
            return cls(str(body["device"]), layers, None if model_ms is None else float(model_ms),
                       str(body.get("model", "")))
        except LatencyTableError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise LatencyTableError(f"{source}: not a latency table ({e}); see the README's "
                                    "'device table' format") from e


class _Curves:
    """Piecewise-linear interpolation of one table entry (see the module doc)."""

    def __init__(self, entry: dict):
        points = np.asarray(entry["points"], np.float64).reshape(-1, 3)
        self.tied = entry["tied"]
        full_in, full_out = entry["full"]
        if self.tied:
            self.curve_in = points[np.argsort(points[:, 0])]
            return
        self.curve_in = points[points[:, 1] == full_out]
        self.curve_out = points[points[:, 0] == full_in][:, [1, 0, 2]]
        if not len(self.curve_in) or not len(self.curve_out):
            raise LatencyTableError(f"table entry {entry.get('class')} has no point at its full "
                                    f"widths {entry['full']}; measure (c_in, c_out) = full too")
        self.full = float(np.interp(full_in, self.curve_in[:, 0], self.curve_in[:, 2]))

    def __call__(self, n_in: int, n_out: int) -> float:
        along_in = float(np.interp(n_in, self.curve_in[:, 0], self.curve_in[:, 2]))
        if self.tied:
            return along_in
        along_out = float(np.interp(n_out, self.curve_out[:, 0], self.curve_out[:, 2]))
        return along_in * along_out / self.full if self.full > 0 else 0.0


def architecture(analysis: Analysis) -> str:
    """A fingerprint of the model's layers, shapes and wiring (not its names or weights)."""
    order: dict[str, int] = {k: i for i, k in enumerate(analysis.graph.inputs)}
    rows = []
    for node in analysis.graph.nodes:
        config = node.layer.get_config()
        config.pop("name", None)
        rows.append([node.class_name, config, [order.get(k, -1) for k in node.inputs],
                     node.in_shapes, node.out_shapes])
        for key in node.outputs:
            order[key] = len(order)
    return fingerprint("architecture", rows)


def table_for(analysis: Analysis, layers: list[CostLayer],
              config: LatencyConfig) -> LatencyTable:
    """The table for the analysed model: a device file, or host measurements (cached, completed).

    Raises:
      LatencyTableError: a device table is unreadable or lacks one of ``layers``.
    """
    if config.table:
        return _device_table(config.table, layers)
    arch, device = architecture(analysis), measure.host_device()
    path = os.path.join(config.cache_dir, device, f"{arch}.json") if config.cache_dir else ""
    table = read_cache(path) or LatencyTable(device, {}, None, arch)
    if _complete(table, layers, config.timing) and path:
        atomic.write_text(path, table.to_json())
    return table


def _device_table(path: str, layers: list[CostLayer]) -> LatencyTable:
    try:
        with open(path) as f:
            table = LatencyTable.from_json(f.read(), path)
    except OSError as e:
        raise LatencyTableError(f"latency table {path}: {e}; pass a file written by "
                                "`python -m pipeline.latency.grid assemble`") from e
    missing = [l.name for l in layers if l.key not in table.layers]
    if missing:
        raise LatencyTableError(
            f"latency table {path} has no entry for {len(missing)} layer(s), e.g. '{missing[0]}' "
            f"(signature {next(l.key for l in layers if l.name == missing[0])}); measure this "
            "model's grid on the device (`python -m pipeline.latency.grid export`)")
    return table


def read_cache(path: str) -> LatencyTable | None:
    """The table cached at ``path``; None if there is none or it is unreadable (logged)."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return LatencyTable.from_json(f.read(), path)
    except (OSError, LatencyTableError) as e:
        _LOG.warning("ignoring unreadable latency cache %s: %s", path, e)
        return None


def _complete(table: LatencyTable, layers: list[CostLayer], timing) -> bool:
    """Measures the points the table lacks; True if it changed."""
    changed = False
    done: set = set()
    for layer in layers:
        if layer.key in done:
            continue
        done.add(layer.key)
        todo = [p for p in layer.points() if not table.has(layer.key, p)]
        if todo:
            for point, ms in _measure_layer(layer, todo, timing):
                table.add(layer, point, ms)
            changed = True
    return changed


def _measure_layer(layer: CostLayer, points: list, timing) -> list:
    blobs, kept = [], []
    for point in points:
        try:
            blobs.append(measure.to_tflite(measure.single_layer_model(
                layer.node, layer.handler, *point)))
            kept.append(point)
        except (ValueError, PruningError) as e:  # e.g. a grouped conv at a width groups don't divide
            _LOG.warning("latency table: %s at %s cannot be built (%s); skipped",
                            layer.name, point, e)
    return list(zip(kept, measure.time_points(blobs, timing))) if blobs else []
