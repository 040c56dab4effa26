"""The pruning plan: which channels of which group are kept, as inspectable data.

A :class:`PrunePlan` is separate from the rebuild: it can be saved as JSON,
read back, printed as a table (a dry run) and replayed on the original model
with :func:`pipeline.apply_plan`. Its JSON is byte-identical for the same
model, settings and seed.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from pipeline.pruning.channels import Analysis
from pipeline.pruning.counting import layer_macs, layer_params
from pipeline.errors import PlanError

FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    """One group: its name, producers, prunable size and kept channel indices."""

    name: str
    producers: tuple[str, ...]
    size: int
    keep: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class LayerSummary:
    """Before/after figures of one layer with weights or MACs."""

    name: str
    class_name: str
    channels_before: int
    channels_after: int
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int


@dataclasses.dataclass(frozen=True)
class PrunePlan:
    """Which channels survive, with the settings that chose them and a summary.

    ``settings`` is the :meth:`pipeline.PruneConfig.to_dict` of the request;
    ``report`` what a measured target found (``target="latency"``: budget,
    predicted and measured milliseconds, rounds), else None. ``alignment``
    what ``round_to="auto"`` resolved to: ``{"round_to": "auto", "level": 0,
    "steps": {group: 32, ...}, "summary": "32 (40 groups), 8 (1 group)"}``
    ("table" for a group on a latency table's widths; level > 0: steps halved
    that many times to reach the target), else None.

    Example:
      >>> result = pipeline.prune(model, 0.5)
      >>> text = result.plan.to_json()
      >>> same = pipeline.apply_plan(model, pipeline.PrunePlan.from_json(text))
      >>> print(result.plan.summary_table())
    """

    model: str
    groups: tuple[GroupPlan, ...]
    settings: dict
    removed: dict
    layers: tuple[LayerSummary, ...]
    report: dict | None = None  # a measured target's report (latency: budget, rounds)
    alignment: dict | None = None  # what round_to="auto" resolved to, per group

    def kept(self) -> dict[str, np.ndarray]:
        """Group name -> kept channel indices."""
        return {g.name: np.asarray(g.keep, dtype=np.int64) for g in self.groups}

    @property
    def macs_before(self) -> int:
        return sum(l.macs_before for l in self.layers)

    @property
    def macs_after(self) -> int:
        return sum(l.macs_after for l in self.layers)

    @property
    def params_before(self) -> int:
        return sum(l.params_before for l in self.layers)

    @property
    def params_after(self) -> int:
        return sum(l.params_after for l in self.layers)

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys, no floats beyond what the settings hold)."""
        body = {
            "format": FORMAT_VERSION,
            "model": self.model,
            "settings": self.settings,
            "removed": {k: round(v, 6) for k, v in sorted(self.removed.items())},
            "groups": [dataclasses.asdict(g) for g in self.groups],
            "layers": [dataclasses.asdict(l) for l in self.layers],
        }
        if self.report is not None:
            body["report"] = self.report
        if self.alignment is not None:
            body["alignment"] = self.alignment
        return json.dumps(body, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "PrunePlan":
        """Reads a plan written by :meth:`to_json`.

        Raises:
          PlanError: the text is not a plan of a known format.
        """
        try:
            body = json.loads(text)
            if body.get("format") != FORMAT_VERSION:
                raise PlanError(f"plan format {body.get('format')!r} is not {FORMAT_VERSION}; "
                                "re-create the plan with this version")
            groups = tuple(GroupPlan(g["name"], tuple(g["producers"]), int(g["size"]),
                                     tuple(int(i) for i in g["keep"])) for g in body["groups"])
            layers = tuple(LayerSummary(**l) for l in body["layers"])
            return cls(body["model"], groups, body["settings"], body["removed"], layers,
                       body.get("report"), body.get("alignment"))
        except (ValueError, KeyError, TypeError) as e:
            if isinstance(e, PlanError):
                raise
            raise PlanError(f"not a pruning plan: {e}") from e

    def summary_table(self) -> str:
        """A fixed-width table of every layer's channels, MACs and params before/after."""
        head = f"{'layer':<34} {'class':<20} {'channels':>11} {'MACs':>23} {'params':>21}"
        rows = [head, "-" * len(head)]
        for l in self.layers:
            rows.append(f"{l.name[:34]:<34} {l.class_name[:20]:<20} "
                        f"{l.channels_before:>5}->{l.channels_after:<5} "
                        f"{_si(l.macs_before):>10}->{_si(l.macs_after):<11} "
                        f"{_si(l.params_before):>9}->{_si(l.params_after):<10}")
        rows.append("-" * len(head))
        rows.append(f"{'total':<55} {_si(self.macs_before):>10}->{_si(self.macs_after):<11} "
                    f"{_si(self.params_before):>9}->{_si(self.params_after):<10}")
        rows.append(f"removed: {self.removed.get('macs', 0):.1%} of MACs, "
                    f"{self.removed.get('filters', 0):.1%} of prunable filters, "
                    f"{1 - self.params_after / max(self.params_before, 1):.1%} of params")
        return "\n".join(rows)


def make_plan(analysis: Analysis, kept: dict, settings: dict, removed: dict,
              report: dict | None = None, alignment: dict | None = None) -> PrunePlan:
    """Builds the plan and its per-layer summary from a selection."""
    groups = tuple(GroupPlan(g.name, g.producers, g.size,
                             tuple(int(i) for i in kept.get(g.name, range(g.size))))
                   for g in analysis.groups)
    keep = analysis.keep_mask({g.name: np.asarray(g.keep, np.int64) for g in groups})
    return PrunePlan(analysis.graph.name, groups, settings, removed, summarize(analysis, keep),
                     report, alignment)


def summarize(analysis: Analysis, keep: np.ndarray) -> tuple[LayerSummary, ...]:
    everything = np.ones_like(keep)
    rows = []
    for layer in analysis.layers:
        macs = layer_macs(layer, everything)
        if "#" in layer.node.name or not (macs or layer.node.weights):
            continue
        out = layer.outs[0] if layer.outs else np.zeros(0, np.int64)
        rows.append(LayerSummary(
            layer.node.name, layer.node.class_name, len(out), int(np.count_nonzero(keep[out])),
            macs, layer_macs(layer, keep), layer_params(layer, everything),
            layer_params(layer, keep)))
    return tuple(rows)


def check_fits(plan: PrunePlan, analysis: Analysis) -> None:
    """Raises PlanError unless ``plan``'s groups are exactly the analysis' groups."""
    have = {g.name: g.size for g in analysis.groups}
    want = {g.name: g.size for g in plan.groups}
    if have != want:
        missing = sorted(set(want) - set(have))[:5]
        extra = sorted(set(have) - set(want))[:5]
        resized = sorted(n for n in set(have) & set(want) if have[n] != want[n])[:5]
        raise PlanError(
            f"plan for model '{plan.model}' does not fit model '{analysis.graph.name}': "
            f"groups missing {missing}, unexpected {extra}, resized {resized}; apply a plan to "
            "the model (and ignore list) it was made from")
    for g in plan.groups:
        if any(i < 0 or i >= g.size for i in g.keep) or len(set(g.keep)) != len(g.keep):
            raise PlanError(f"plan group '{g.name}' keeps invalid indices (size {g.size})")
        if not g.keep:
            raise PlanError(f"plan group '{g.name}' keeps no channel; keep at least one")


def _si(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
