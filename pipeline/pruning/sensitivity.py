"""Per-group sensitivity scan: validation accuracy with one group narrowed at a time.

For every prunable channel group of a trained model and every ratio in a
list, the scan removes that fraction of the group's channels (the least
important by the pruning criterion, so the same channels the pruner would
drop first), rebuilds the narrower model, and measures its validation
accuracy without any fine-tuning. Every other group stays whole. A group
whose accuracy collapses at small ratios is one to prune gently (or to list
in ``ignore``); a flat curve marks a group with slack.

Each group is narrowed through :func:`pipeline.pruning.selection.select_fixed`, not
``pipeline.prune(model, 0, ratios={group: r})``: the latter also checks the
overall target (0% removed, within two points), which a large group
narrowed by 50% or more overshoots, so it raises ``TargetError``.

Example:
  >>> import pipeline
  >>> from pipeline import sensitivity
  >>> curves = sensitivity.scan(model, datasets.val, ratios=(0.3, 0.7), max_batches=10)
  >>> curves.groups["block1_conv1"][1]
  {'ratio': 0.3, 'accuracy': 0.91, 'macs_removed': 0.034, 'kept': 23}
"""
from __future__ import annotations

import dataclasses
import glob
import time
from typing import Callable, Sequence

import tensorflow as tf

from pipeline.pruning import criteria
from pipeline.pruning.channels import analyse
from pipeline.errors import PruningError
from pipeline.pruning.rebuild import rebuild
from pipeline.pruning.selection import Constraints, select_fixed


@dataclasses.dataclass(frozen=True)
class Curves:
    """What :func:`scan` measured.

    Attributes:
      baseline_accuracy: validation accuracy of the unpruned model (ratio 0).
      examples: validation images each accuracy was measured on.
      groups: group name -> one point per ratio, ratio 0 first:
        ``{"ratio", "accuracy", "macs_removed", "kept"}``.
      sizes: group name -> its channel count.
      seconds: time the scan took.
    """

    baseline_accuracy: float
    examples: int
    groups: dict
    sizes: dict
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def scan(model, dataset, ratios: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9), *,
         criterion: str = "l1", ignore: Sequence[str] = (), min_filters: int = 1,
         max_batches: int = 0, data=None, seed: int = 0,
         progress: Callable[[str], None] | None = print) -> Curves:
    """Measures accuracy against the fraction removed from each group alone.

    Args:
      model: a trained functional tf_keras classifier (left unchanged).
      dataset: ``(images, labels)`` batches to measure accuracy on (the
        validation split; it is read in the same order for every point).
      ratios: fractions of each group's channels to remove, each in (0, 1).
      criterion: importance criterion that picks the channels removed.
      ignore: layer names or patterns left whole (as in ``pipeline.prune``).
      min_filters: the fewest channels any layer keeps; a high ratio on a
        small group is capped by it.
      max_batches: read at most this many batches of ``dataset`` (0: all).
      data: training batches, for criteria that need data (``taylor``).
      seed: for ``random``.
      progress: called with one line per measured point (None: silent).

    Returns:
      The :class:`Curves`.

    Raises:
      PruningError: an empty dataset or a ratio outside (0, 1).
      UnsupportedModelError, UnsupportedLayerError: the model can't be analysed.
    """
    bad = [r for r in ratios if not 0 < r < 1]
    if bad:
        raise PruningError(f"ratios={tuple(ratios)} holds {bad}; pass ratios=<fractions, each "
                           "in (0, 1)>", argument="ratios")
    start = time.time()
    batches = _batches(dataset, max_batches)
    examples = sum(len(y) for _, y in batches)
    analysis = analyse(model, ignore)
    scores = criteria.score(analysis, criterion,
                            criteria.Context(model=model, data=data, seed=seed))
    base = accuracy(model, batches)
    groups, sizes = {}, {}
    total, done = len(analysis.groups) * len(ratios), 0
    for group in analysis.groups:
        points = [{"ratio": 0.0, "accuracy": base, "macs_removed": 0.0, "kept": group.size}]
        for ratio in ratios:
            fixed = Constraints(int(min_filters), 1, ((glob.escape(group.name), float(ratio)),))
            chosen = select_fixed(analysis, scores, fixed)
            narrow = rebuild(model, analysis, analysis.keep_mask(chosen.kept))
            points.append({"ratio": float(ratio), "accuracy": accuracy(narrow, batches),
                           "macs_removed": float(chosen.removed["macs"]),
                           "kept": int(len(chosen.kept[group.name]))})
            done += 1
            if progress:
                left = (time.time() - start) / done * (total - done)
                progress(f"{done}/{total} {group.name} -{ratio:.0%} "
                         f"({points[-1]['kept']}/{group.size} kept): val accuracy "
                         f"{points[-1]['accuracy']:.4f} (baseline {base:.4f}), ~{left:.0f} s left")
        groups[group.name] = points
        sizes[group.name] = group.size
    return Curves(base, examples, groups, sizes, time.time() - start)


def accuracy(model, batches) -> float:
    """Top-1 accuracy of ``model`` (softmax or logits output) on in-memory batches."""
    # Eager: each scan point is a new model, and tracing one (8.4 s per point on
    # MobileNetV2 here) costs far more than the few batches it would speed up (0.3 s).
    correct = total = 0
    for x, y in batches:
        labels = tf.cast(tf.reshape(y, [-1]), tf.int64)
        predicted = tf.argmax(model(x, training=False), axis=-1)
        correct += int(tf.reduce_sum(tf.cast(predicted == labels, tf.int64)))
        total += int(labels.shape[0])
    return correct / total


def _batches(dataset, max_batches: int) -> list:
    """The first ``max_batches`` batches (all if 0), read once and kept in memory."""
    if max_batches:
        dataset = dataset.take(max_batches)
    batches = [(x, y) for x, y in dataset]
    if not batches:
        raise PruningError("the sensitivity scan got an empty validation split: dataset holds "
                           "no batches; pass dataset=<non-empty (images, labels) batches>",
                           argument="dataset")
    return batches
