"""How ``target="latency"`` measures and refines: :class:`LatencyConfig`.

Kept apart from the tables and the timing so that the public API can name it
without loading LiteRT (``import pipeline`` stays light).
"""
from __future__ import annotations

import dataclasses

from pipeline.errors import TargetError
from pipeline.latency import measure

DEFAULT_GRID = (1.0, 0.875, 0.75, 0.5, 0.25, 0.0)


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    """How ``target="latency"`` measures and refines.

    Attributes:
      table: a table JSON measured on a device; '' measures on this host.
      cache_dir: where host tables are cached (``<dir>/<device>/<model>.json``);
        '' keeps them in memory only.
      tolerance: the measured latency must land within this fraction of the budget.
      max_iterations: allocate-rebuild-measure rounds before giving up.
      grid: fractions of each axis' prunable range measured in the table.
      timing: run counts (:class:`pipeline.latency.measure.Timing`).
      utility: what the allocator keeps the most of: ``"log"`` (each group's
        importance counted with diminishing returns as it thins; the default,
        more accurate after fine-tuning in BENCHMARKS.md) or ``"sum"`` (the
        plain sum of the kept channels' importance, as HALP).
    """

    table: str = ""
    cache_dir: str = ""
    tolerance: float = 0.05
    max_iterations: int = 4
    grid: tuple = DEFAULT_GRID
    timing: measure.Timing = measure.Timing()
    utility: str = "log"

    def __post_init__(self):
        if not 0 < self.tolerance < 1 or int(self.max_iterations) < 1:
            raise TargetError(f"latency tolerance must be in (0, 1) and max_iterations >= 1, got "
                              f"{self.tolerance} and {self.max_iterations}")
        if not self.grid or not all(0 <= f <= 1 for f in self.grid):
            raise TargetError(f"latency grid {self.grid!r}: give fractions in [0, 1]")
        object.__setattr__(self, "grid", tuple(float(f) for f in self.grid))

    def to_dict(self) -> dict:
        """The settings as plain JSON values (``timing`` as a dict)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> "LatencyConfig":
        """The inverse of :meth:`to_dict`; missing keys take their defaults."""
        settings = dict(settings)
        if isinstance(settings.get("timing"), dict):
            settings["timing"] = measure.Timing(**settings["timing"])
        if "grid" in settings:
            settings["grid"] = tuple(settings["grid"])
        return cls(**settings)
