"""Re-estimating BatchNorm moving statistics on training images, no weight update.

A BatchNorm layer normalises with its moving mean and variance at inference.
They are an exponential average of the batches it saw in training, so they
lag behind whenever the layer's input distribution moves faster than the
average: after pruning (the narrower layers before it sum fewer channels),
and after a short fine-tune on new images, when the weights have moved and
the averages still remember the old data. Measured on the default run (see
BENCHMARKS.md, "BatchNorm re-estimation"), the stale statistics are most of
the accuracy lost right after pruning.

:func:`reestimate` replaces them with the statistics of ``batches``
training batches, as the network computes them in training mode: every
BatchNorm layer of the model (nested sub-models included) is run with
momentum 0, so that after each batch its moving mean and variance hold that
batch's statistics; those are pooled over the batches into the population
mean and variance (mean of the batch variances plus the variance of the
batch means) and assigned. No optimizer runs, so no other weight changes; a
layer's ``momentum`` and ``trainable`` flags are restored afterwards (a
frozen BatchNorm is re-estimated too: ``trainable=False`` would otherwise
make it ignore ``training=True``).

:func:`before_validation` makes a ``fit`` callback doing the same before each
validation pass: the validation accuracy, and with it early stopping and the
best weights it restores, then describe the model as it will be used. Without
it a network whose BatchNorm momentum is high (Keras applications use 0.999)
validates on statistics of the weights of hundreds of steps ago, its
validation accuracy hardly moves during a short fine-tune, and early stopping
ends the fine-tune after ``patience`` epochs.

Example:
  >>> from pipeline.training import bn_stats
  >>> done = bn_stats.reestimate(model, datasets.train, batches=50)
  >>> done.layers, done.batches
  (('block1_bn1', ...), 50)
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf
from pipeline import keras_api
from pipeline.errors import PruningError

# The layers whose moving statistics are re-estimated, by class name in either Keras.
# SyncBatchNormalization is a sibling class of BatchNormalization, not a subclass, in
# tf_keras; Keras 3 has one BatchNormalization (``synchronized=True`` for the other).
BATCHNORM_TYPES = ("BatchNormalization", "SyncBatchNormalization")


@dataclasses.dataclass(frozen=True)
class Reestimation:
    """What :func:`reestimate` did.

    Attributes:
      layers: names of the BatchNorm layers re-estimated (empty: none, or off).
      batches: training batches their statistics were pooled over (0: nothing done).
      seconds: time it took.
    """

    layers: tuple[str, ...]
    batches: int
    seconds: float


def batchnorm_layers(model) -> list:
    """The BatchNorm layers of ``model``, those of nested sub-models included, each once."""
    # tf_keras layers are tf.Modules (layers inside custom layers are found too); Keras 3
    # layers are not: its models are searched through their (nested) layers.
    candidates = model.submodules if hasattr(model, "submodules") else _layers(model)
    found, seen = [], set()
    for layer in candidates:
        if id(layer) not in seen and keras_api.package_of(type(layer)) and any(
                base.__name__ in BATCHNORM_TYPES for base in type(layer).__mro__):
            seen.add(id(layer))
            found.append(layer)
    return found


def _layers(model):
    """Every layer of ``model``, depth first, nested models' layers included."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _layers(layer)


def reestimate(model, dataset: tf.data.Dataset, batches: int) -> Reestimation:
    """Sets every BatchNorm layer's moving statistics to those of ``batches`` batches.

    Args:
      model: a tf_keras or Keras 3 model (functional, Sequential or subclassed; nested
        models are searched too). A model without BatchNorm is left as it is.
      dataset: batches of images, or of ``(images, labels, ...)`` tuples (the
        images are the first element), e.g. ``Datasets.train``.
      batches: how many batches to read (0: do nothing).

    Returns:
      A :class:`Reestimation`.

    Raises:
      PruningError: ``batches`` is negative, or ``dataset`` yields no batch.
    """
    if batches < 0:
        raise PruningError(f"batches={batches} must be >= 0 (0: no re-estimation)",
                           argument="batches")
    layers = batchnorm_layers(model)
    if not layers or batches == 0:
        return Reestimation((), 0, 0.0)
    start = time.time()
    saved = [(layer.momentum, layer.trainable) for layer in layers]
    try:
        for layer in layers:
            layer.momentum, layer.trainable = 0.0, True
        pooled, seen = _pool(model, layers, dataset.take(batches))
    finally:
        for layer, (momentum, trainable) in zip(layers, saved):
            layer.momentum, layer.trainable = momentum, trainable
    if seen == 0:
        raise PruningError("the data set for BatchNorm re-estimation yielded no batch; pass "
                           "a non-empty dataset or batches=0", argument="dataset")
    for layer, (mean, variance) in zip(layers, pooled):
        layer.moving_mean.assign(mean.astype(layer.moving_mean.numpy().dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.numpy().dtype))
    return Reestimation(tuple(layer.name for layer in layers), seen, time.time() - start)


def before_validation(model, dataset: tf.data.Dataset, batches: int):
    """A callback (of ``model``'s Keras) that re-estimates ``model``'s BatchNorm statistics
    (:func:`reestimate`) before each validation pass of ``fit``.

    Args:
      model: the model whose BatchNorm layers are re-estimated (the student,
        also when a distiller or multi-head trainer wraps it).
      dataset: the training batches.
      batches: how many per re-estimation (0: the callback does nothing).
    """
    K = keras_api.of(model)

    class BeforeValidation(K.callbacks.Callback):
        def on_test_begin(self, logs=None):
            reestimate(model, dataset, batches)

    return BeforeValidation()


def _pool(model, layers, dataset) -> tuple[list, int]:
    """Runs ``dataset`` through ``model`` in training mode; pools each layer's batch stats.

    Returns:
      ``([(mean, variance) per layer], batches seen)``.
    """
    # Traced here, after the momentum was set: a layer reads it as a Python number.
    forward = tf.function(lambda images: model(images, training=True))
    sums = [[0.0, 0.0, 0.0] for _ in layers]  # sum of means, of squared means, of variances
    seen = 0
    for element in dataset:
        forward(element[0] if isinstance(element, (tuple, list)) else element)
        for total, layer in zip(sums, layers):
            mean = layer.moving_mean.numpy().astype(np.float64)
            total[0] = total[0] + mean
            total[1] = total[1] + mean ** 2
            total[2] = total[2] + layer.moving_variance.numpy().astype(np.float64)
        seen += 1
    if seen == 0:
        return [], 0
    pooled = []
    for means, squares, variances in sums:
        mean = means / seen
        # Population variance: within-batch (mean of the variances) plus between-batch.
        pooled.append((mean, variances / seen + np.maximum(squares / seen - mean ** 2, 0.0)))
    return pooled, seen
