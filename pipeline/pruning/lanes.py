"""``round_to="auto"``: the kept widths each group may take, by its width or a latency table.

An integer ``round_to`` lets a group keep multiples of it (or its full
width). ``"auto"`` gives every group its own *ladder* of widths instead:

* from a latency table, when one is given (the speed steps measured by
  :mod:`pipeline.latency.steps`);
* otherwise by the lane-width rule :data:`RULE`, read from the per-layer
  tables ``target="latency"`` measured on this CPU (XNNPACK, LiteRT 2.3,
  BENCHMARKS.md): a conv's time moves in steps of 32 output channels once it
  has 32 (48 channels cost as much as 64, 80 as much as 96, 112 as much as
  128), 16 is cheaper than 32, and 8 costs as much as 16. So groups of 64
  channels or more keep multiples of 32 (and 16); narrower groups take finer
  steps, so that they can still be thinned: 32-63 channels step by 16, 16-31
  by 8, 8-15 by 4, fewer by 1.

A ladder can make a target unreachable that a finer one reaches (a model of
8-64 channels at 50% of MACs). ``"auto"`` then tries the next *level*, every
step halved (32 -> 16 -> 8 ...), down to steps of 1 (every width), so it never
refuses a target that ``round_to=1`` reaches.

Example:
  >>> auto_step(256), auto_step(48), auto_step(16), auto_step(5)
  (32, 16, 8, 1)
  >>> ladder(64, auto_step(64))
  (16, 32, 64)
"""
from __future__ import annotations

import numbers

AUTO = "auto"
# (least group width, step of its kept widths): see the module doc for the measurements.
RULE = ((64, 32), (32, 16), (16, 8), (8, 4), (1, 1))
WIDE = 32  # a ladder of this step also holds half of it: 16 channels are a speed step too
LEVELS = 6  # 32 halved five times is 1: the last level keeps every width


def check(round_to) -> int | str:
    """``round_to`` as an int >= 1 or ``"auto"``; an int-like string (from a config) becomes an int.

    Raises:
      ValueError: anything else (the caller words the error).
    """
    if isinstance(round_to, str):
        text = round_to.strip().lower()
        if text == AUTO:
            return AUTO
        if not text.isdigit():
            raise ValueError(f"round_to must be an integer >= 1 or 'auto', got {round_to!r}")
        round_to = int(text)
    if isinstance(round_to, bool) or not isinstance(round_to, numbers.Real) \
            or int(round_to) != round_to:
        raise ValueError(f"round_to must be an integer >= 1 or 'auto', got {round_to!r}")
    if int(round_to) < 1:
        raise ValueError(f"round_to must be >= 1, got {round_to!r}; give an integer or 'auto'")
    return int(round_to)


def auto_step(size: int, level: int = 0) -> int:
    """The rule's step for a group of ``size`` channels, halved ``level`` times (at least 1)."""
    step = next(s for least, s in RULE if size >= least)
    return max(step >> level, 1)


def ladder(size: int, step: int, auto: bool = True) -> tuple[int, ...]:
    """Widths a group of ``size`` may keep at ``step``: its multiples below ``size``, and ``size``.

    With ``auto``, a step of :data:`WIDE` also allows ``WIDE // 2`` (measured
    faster than 32); an integer ``round_to`` (``auto=False``) keeps multiples only.
    """
    widths = set(range(step, size, step)) | {size}
    if auto and step == WIDE and size > WIDE // 2:
        widths.add(WIDE // 2)
    return tuple(sorted(widths))


def describe(steps: dict) -> str:
    """``{group: step or "table"}`` as a short line: ``'table (3 groups), 32 (41 groups), 8 (1 group)'``."""
    counts: dict = {}
    for step in steps.values():
        counts[step] = counts.get(step, 0) + 1
    order = sorted(counts, key=lambda s: (isinstance(s, int), -s if isinstance(s, int) else 0))
    return ", ".join(f"{s} ({counts[s]} group{'s' * (counts[s] != 1)})" for s in order)
