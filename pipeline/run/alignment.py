"""The alignment a run prunes at: ``prune.round_to``, or the coarsest finer step that reaches.

``prune.round_to="auto"`` gives each group its own speed steps and already
falls back to finer ones inside the library when a target needs them
(:mod:`pipeline.pruning.lanes`), so it is passed through as it is; the
record keeps what it resolved to (steps per group width, and the level of
finer steps), and ``report.md`` says so in one line.

An integer ``prune.round_to`` such as 16 keeps channel counts in multiples of
16, which cannot thin a model whose layers hold 8 to 32 channels by half.
Rather than refuse such a run, the run layer tries finer steps (16, then 8,
4, 2, 1: halving) and keeps the coarsest that reaches the target; the prune
stage records and prints the one it used and ``report.md`` says so in one
line. A latency target is left alone: it searches its own budget. The
library keeps its exact semantics (:func:`pipeline.prune` with
``round_to=16`` still raises).

Example:
  >>> from pipeline.run import alignment
  >>> alignment.steps(16)
  (16, 8, 4, 2, 1)
  >>> plan, used = alignment.reach(
  ...     lambda r: api.plan_pruning(model, 0.5, round_to=r), 16, "macs")
"""
from __future__ import annotations

from typing import Callable, TypeVar

from pipeline.errors import TargetError

T = TypeVar("T")
# The words of the selection's error for a target the constraints make unreachable
# (pipeline.pruning.selection.select); any other TargetError is a bad request, re-raised.
UNREACHABLE = "the closest reachable is"
# Targets whose reachability depends on the alignment; ``latency`` searches its own budget.
ALIGNED_TARGETS = ("macs", "filters")


AUTO = "auto"


def steps(round_to: int | str) -> tuple:
    """``round_to`` and the finer steps tried after it: halving, down to 1 (``"auto"`` alone).

    Example:
      >>> steps(12)
      (12, 6, 3, 1)
      >>> steps("auto")
      ('auto',)
    """
    if round_to == AUTO:
        return (AUTO,)
    out = [int(round_to)]
    while out[-1] > 1:
        out.append(max(out[-1] // 2, 1))
    return tuple(out)


def reach(attempt: Callable[[int], T], round_to: int, target: str) -> tuple[T, int]:
    """``attempt(round_to)``, or ``attempt`` at the coarsest finer step that reaches the target.

    Args:
      attempt: prunes or plans at the alignment it is given; raises the
        selection's :class:`TargetError` when the target is unreachable.
      round_to: the alignment asked for (``prune.round_to``).
      target: ``prune.target``; for ``latency`` only ``round_to`` is tried.

    Returns:
      ``(what attempt returned, the round_to it was given)``.

    Raises:
      TargetError: unreachable even at ``round_to=1`` (the message says the
        closest reachable there and the steps tried), or any other
        TargetError ``attempt`` raised.
    """
    if target not in ALIGNED_TARGETS or round_to == AUTO:
        return attempt(round_to), round_to
    tried = steps(round_to)
    for step in tried:
        try:
            return attempt(step), step
        except TargetError as e:
            if UNREACHABLE not in str(e):
                raise
            last = e
    if len(tried) == 1:
        raise last
    raise TargetError(f"{last} (asked for round_to={round_to}; finer steps "
                      f"{', '.join(map(str, tried[1:]))} were tried too)") from last


def record(asked: int | str, used: int | str, resolved: dict | None = None) -> dict:
    """What a prune record keeps: ``{"asked": 16, "used": 8}``.

    For ``"auto"``, also what the plan's ``alignment`` says it resolved to:
    ``{"asked": "auto", "used": "auto", "level": 0, "steps": "32 (21 groups), 8 (2 groups)"}``.
    """
    if asked == AUTO:
        resolved = resolved or {}
        return {"asked": AUTO, "used": AUTO, "level": int(resolved.get("level", 0)),
                "steps": str(resolved.get("summary", ""))}
    return {"asked": int(asked), "used": int(used)}


def line(round_to: dict | None) -> list[str]:
    """``report.md``'s line on the alignment: auto's steps, or a finer integer step used.

    Example:
      >>> line({"asked": 16, "used": 8})[0][:40]
      'Alignment: prune.round_to=16 cannot reac'
    """
    if round_to and round_to.get("asked") == AUTO:
        finer = (f"; steps halved {round_to['level']} time(s) to reach the target"
                 if round_to.get("level") else "")
        return [f"Alignment: prune.round_to=auto kept each layer's channels on its speed steps: "
                f"{round_to.get('steps') or 'per group'} (step: groups){finer}."]
    if not round_to or round_to.get("used") == round_to.get("asked"):
        return []
    return [f"Alignment: prune.round_to={round_to['asked']} cannot reach the target on this "
            f"model; channels were kept in multiples of {round_to['used']} instead."]
