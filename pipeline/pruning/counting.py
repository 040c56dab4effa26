"""Counting multiply-accumulates and parameters.

Convention (the lecture lab's): one MAC per kernel weight per output
position of Conv (all kinds: grouped, depthwise, separable, transpose) and
Dense layers; biases, normalisation, activations, pooling and elementwise
ops count zero. Per sample (batch 1).
"""
from __future__ import annotations

import logging

import numpy as np

from pipeline.pruning import handlers
from pipeline.pruning.graph import layer_paths, read_graph
from pipeline.pruning.handlers.base import channels

_LOG = logging.getLogger(__name__)


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on one sample.

    Args:
      model: a built functional or Sequential model of either Keras.

    Returns:
      The MAC count (a Python int).

    Raises:
      UnsupportedModelError: the model has no graph (subclassed, unbuilt).

    Example:
      >>> import pipeline, tf_keras
      >>> m = tf_keras.Sequential([tf_keras.Input((8,)), tf_keras.layers.Dense(4)])
      >>> pipeline.count_macs(m)
      32
    """
    total = 0
    for node in read_graph(model, allow_shared=_all_names(model)).nodes:
        handler = handlers.find_handler(type(node.layer))
        if handler is None:
            if node.weights:
                _LOG.warning("count_macs: no handler for %s (%s); counted as 0 MACs",
                                node.name, node.class_name)
            continue
        total += handler.macs(node, channels(node.in_shapes[0]) if node.in_shapes else 0,
                              channels(node.out_shapes[0]) if node.out_shapes else 0)
    return int(total)


def count_params(model) -> int:
    """Number of parameters (trainable and not) of ``model``."""
    return int(sum(np.prod(w.shape) for w in model.weights))


def layer_macs(layer, keep: np.ndarray) -> int:
    """MACs of an analysed layer when only ``keep``-ed classes remain."""
    node = layer.node
    n_in = int(np.count_nonzero(keep[layer.ins[0]])) if layer.ins else 0
    n_out = int(np.count_nonzero(keep[layer.outs[0]])) if layer.outs else 0
    return int(layer.handler.macs(node, n_in, n_out))


def layer_params(layer, keep: np.ndarray) -> int:
    """Parameters of an analysed layer when only ``keep``-ed classes remain."""
    shapes = {}
    for name, w in layer.node.named_weights.items():
        shapes[name] = list(w.shape)
    for axis in layer.axes:
        shape = shapes[axis.weight]
        shape[axis.axis] = int(np.count_nonzero(keep[axis.ids]))
    return int(sum(np.prod(s) for s in shapes.values()))



def _all_names(model):
    return frozenset(path[-1] for path, _ in layer_paths(model))
