"""Importance criteria, looked up by name in a registry.

A criterion returns one score per channel id (higher = more important). It
never looks at layer types: it reads the weight axes that the handlers
declared, so the score of a channel aggregates every slice of its group
(its filters, the consumers' input slices, BN and other per-channel weights).

Built in: ``l1``, ``l2`` (norms over all scored slices), ``bn_gamma`` (|gamma|
of the channel's BatchNorms, network slimming; channels without BatchNorm
fall back to l1, rescaled to their group's gamma), ``fpgm`` (distance of each filter to the others, a proxy for the
geometric median), ``taylor`` (|sum w * dL/dw| over a few batches of data)
and ``random``. Under l1, l2, bn_gamma and fpgm an all-zero channel scores 0.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tf_keras

from pipeline.pruning.channels import Analysis
from pipeline.errors import PruningError

from pipeline.registry import Registry

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Context:
    """What a criterion may use besides the weights.

    Attributes:
      model: the analysed model.
      data: an iterable of ``(images, labels)`` batches, or None.
      seed: for ``random``.
      batches: how many batches ``taylor`` reads.
    """

    model: Any
    data: Any = None
    seed: int = 0
    batches: int = 4


Criterion = Callable[[Analysis, Context], np.ndarray]
_CRITERIA: Registry[Criterion] = Registry("criterion")


def register_criterion(name: str):
    """Decorator registering ``fn(analysis, context) -> scores per channel id``.

    Raises:
      RegistryError: ``name`` is already registered.
    """
    return _CRITERIA.register(name)


def get_criterion(name: str) -> Criterion:
    """The criterion registered as ``name``.

    Raises:
      RegistryError: unknown name; the message lists the valid ones.
    """
    return _CRITERIA.get(name)


def criterion_names() -> list[str]:
    return _CRITERIA.names()


def score(analysis: Analysis, name: str, context: Context) -> dict[str, np.ndarray]:
    """Scores every group's channels with criterion ``name``: group name -> scores."""
    per_id = get_criterion(name)(analysis, context)
    return {g.name: np.asarray(per_id[g.classes], np.float64) for g in analysis.groups}


def _weights(layer) -> dict[str, np.ndarray]:
    return {name: np.asarray(w) for name, w in layer.node.named_weights.items()}


def _accumulate(analysis, values, select, reduce) -> np.ndarray:
    """Sums ``reduce`` of every selected weight slice into its channel id."""
    total = np.zeros(analysis.n_ids)
    for layer in analysis.layers:
        if "#" in layer.node.name:
            continue  # a shared layer's weights count once
        chosen = [a for a in layer.axes if select(a)]
        if not chosen:
            continue
        arrays = values(layer)
        for axis in chosen:
            w = np.moveaxis(arrays[axis.weight], axis.axis, 0)
            np.add.at(total, axis.ids, reduce(w.reshape(w.shape[0], -1)))
    return total


def _scored(axis) -> bool:
    return axis.scored


@register_criterion("l1")
def l1(analysis: Analysis, context: Context) -> np.ndarray:
    del context
    return _accumulate(analysis, _weights, _scored, lambda rows: np.abs(rows).sum(1))


@register_criterion("l2")
def l2(analysis: Analysis, context: Context) -> np.ndarray:
    del context
    return np.sqrt(_accumulate(analysis, _weights, _scored, lambda rows: (rows ** 2).sum(1)))


@register_criterion("bn_gamma")
def bn_gamma(analysis: Analysis, context: Context) -> np.ndarray:
    def is_scale(axis):
        return "bn_scale" in axis.tags

    gamma = _accumulate(analysis, _weights, is_scale, lambda rows: np.abs(rows).sum(1))
    covered = _accumulate(analysis, _weights, is_scale, lambda rows: np.ones(len(rows))) > 0
    uncovered = [g for g in analysis.groups if not covered[g.classes].all()]
    if not uncovered:
        return gamma
    _LOG.info("bn_gamma: %d group(s) have channels without BatchNormalization; those use "
                 "l1, rescaled to the group's gamma: %s", len(uncovered),
                 ", ".join(g.name for g in uncovered[:5]))
    norms = l1(analysis, context)
    for g in uncovered:
        has = covered[g.classes]
        scale = 1.0
        if has.any() and norms[g.classes[has]].mean() > 0:
            scale = gamma[g.classes[has]].mean() / norms[g.classes[has]].mean()
        gamma[g.classes[~has]] = norms[g.classes[~has]] * scale
    return gamma


@register_criterion("fpgm")
def fpgm(analysis: Analysis, context: Context) -> np.ndarray:
    del context
    result = np.zeros(analysis.n_ids)
    local = np.full(analysis.n_ids, -1)
    owner = np.full(analysis.n_ids, -1)
    for gi, g in enumerate(analysis.groups):
        local[g.classes] = np.arange(g.size)
        owner[g.classes] = gi
    blocks: dict[int, list[np.ndarray]] = {}
    for layer in analysis.layers:
        outs = [a for a in layer.axes if a.role == "out" and a.scored]
        if not outs or "#" in layer.node.name:
            continue
        arrays = _weights(layer)
        for axis in outs:
            rows = np.moveaxis(arrays[axis.weight], axis.axis, 0)
            rows = rows.reshape(rows.shape[0], -1)
            for gi in np.unique(owner[axis.ids][owner[axis.ids] >= 0]):
                where = owner[axis.ids] == gi
                block = np.zeros((analysis.groups[gi].size, rows.shape[1]))
                np.add.at(block, local[axis.ids[where]], rows[where])
                blocks.setdefault(int(gi), []).append(block)
    for gi, parts in blocks.items():
        result[analysis.groups[gi].classes] = _distance_sums(np.hstack(parts))
    return result


def _distance_sums(x: np.ndarray) -> np.ndarray:
    """Sum of Euclidean distances from each row to all rows; all-zero rows get 0."""
    sq = (x ** 2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    sums = np.sqrt(d2).sum(1)
    sums[sq == 0] = 0.0
    return sums


@register_criterion("random")
def random(analysis: Analysis, context: Context) -> np.ndarray:
    return np.random.default_rng(context.seed).random(analysis.n_ids)


@register_criterion("taylor")
def taylor(analysis: Analysis, context: Context) -> np.ndarray:
    if context.data is None:
        raise PruningError("criterion 'taylor' needs data: pass data=<iterable of (images, "
                           "labels) batches> (a few training batches are enough)")
    grads = _gradients(context.model, context.data, context.batches)

    def products(layer):
        out = {}
        for name, w in layer.node.named_weights.items():
            g = grads.get(id(w))
            out[name] = np.asarray(w) * g if g is not None else np.zeros(w.shape)
        return out

    first_order = np.abs(_accumulate(analysis, products, _scored, lambda rows: rows.sum(1)))
    return first_order + _tie_breaker(first_order, l1(analysis, context))


def _tie_breaker(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """``secondary`` scaled below the smallest gap in ``primary``, to order its ties.

    Taylor scores tie at zero for live channels that ReLU silences on the
    sample batches; the weight norm then ranks truly zero channels lowest.
    """
    if not secondary.max() > 0:
        return np.zeros_like(primary)
    values = np.unique(primary)
    gaps = np.diff(values)
    gap = gaps[gaps > 0].min() if (gaps > 0).any() else 1.0
    return secondary / secondary.max() * gap * 0.5


def _gradients(model, data, batches: int) -> dict:
    """Sum of dL/dw over ``batches`` batches, keyed by ``id`` of the variable (either Keras)."""
    loss_fn = _loss_for(model)
    total = {}
    seen = 0
    for x, y in data:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        for var, g in zip(model.trainable_weights,
                          tape.gradient(loss, model.trainable_weights)):
            if g is not None:
                total[id(var)] = total.get(id(var), 0) + np.asarray(g)
        seen += 1
        if seen >= batches:
            break
    if not seen:
        raise PruningError("criterion 'taylor' got an empty data iterable")
    return total


def _loss_for(model):
    last = model.layers[-1].get_config()
    probabilities = last.get("activation") == "softmax" or type(model.layers[-1]).__name__ == "Softmax"
    sparse = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
    dense = tf_keras.losses.CategoricalCrossentropy(from_logits=not probabilities)

    def loss(y, out):
        y = tf.convert_to_tensor(y)
        return dense(y, out) if y.shape.rank == out.shape.rank else sparse(y, out)
    return loss
