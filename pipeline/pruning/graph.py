"""Reads a tf_keras model into plain, frozen graph data.

This is the only module that touches tf_keras' private API: the functional
graph (``_nodes_by_depth``, ``_keras_history``, node call arguments) and the
layer classes ``tf_keras.layers`` does not export (:data:`LAYER_SCALE`,
:data:`CUSTOM_SCALE_LAYER`, :data:`TF_OP_LAMBDA`, :data:`SLICING_OP_LAMBDA`,
which the handler registry needs). Keras warns that this API may change;
keeping every touch here means one module to fix when it does. Everything
downstream works on :class:`Graph`: nodes keyed by unique names, tensors
keyed by strings, static shapes without the batch axis.

Nested functional or Sequential sub-models (ConvNeXt's stem, for example) are
inlined: their layers become nodes named ``"<submodel>/<layer>"`` and their
input tensors are the outer tensors they were called on. A node keeps its
``path`` (sub-model names, then the layer name) so that the rebuild can find
the layer's entry in the nested config.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras
from tf_keras.src.applications import convnext as _convnext
from tf_keras.src.applications import inception_resnet_v2 as _inception_resnet_v2
from tf_keras.src.layers.core import tf_op_layer as _tf_op_layer

from pipeline.errors import UnsupportedModelError

# Layer classes tf_keras uses in its own models but does not export publicly.
LAYER_SCALE = _convnext.LayerScale  # ConvNeXt: multiplies each channel by gamma
CUSTOM_SCALE_LAYER = _inception_resnet_v2.CustomScaleLayer  # InceptionResNetV2: x + scale * r
TF_OP_LAMBDA = _tf_op_layer.TFOpLambda  # a TensorFlow op called on Keras tensors
SLICING_OP_LAMBDA = _tf_op_layer.SlicingOpLambda  # ``x[..., 1:3]`` on a Keras tensor


@dataclasses.dataclass(frozen=True)
class Node:
    """One call of one layer.

    Attributes:
      name: unique name: the layer name, prefixed by enclosing sub-models.
      path: sub-model names then the layer name, to locate its config.
      layer: the tf_keras layer object (read, never modified).
      inputs: keys of the tensors the layer was called on, in call order.
      outputs: keys of the tensors it produced.
      in_shapes: static shapes (no batch axis) of ``inputs``.
      out_shapes: static shapes (no batch axis) of ``outputs``.
      constants: the call's non-tensor arguments (scalars, arrays, None),
        flattened; used by handlers of ops such as TFOpLambda.
    """

    name: str
    path: tuple[str, ...]
    layer: Any
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    in_shapes: tuple[tuple, ...]
    out_shapes: tuple[tuple, ...]
    constants: tuple[Any, ...] = ()

    @property
    def class_name(self) -> str:
        return type(self.layer).__name__


@dataclasses.dataclass(frozen=True)
class Graph:
    """A model flattened into nodes in topological order.

    Attributes:
      name: the model's name.
      nodes: every layer call except Input layers, inputs before consumers.
      shapes: tensor key -> static shape without the batch axis (None where
        unknown).
      inputs: keys of the model's input tensors.
      outputs: keys of the model's output tensors.
      bindings: (path of a sub-model's InputLayer, key of the outer tensor it
        is called on); the rebuild narrows those InputLayers.
    """

    name: str
    nodes: tuple[Node, ...]
    shapes: dict[str, tuple]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    bindings: tuple[tuple[tuple[str, ...], str], ...] = ()

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def read_graph(model, allow_shared=frozenset()) -> Graph:
    """Flattens a built tf_keras functional or Sequential model.

    Args:
      model: a ``tf_keras.Model`` built as a graph network.
      allow_shared: names of layers that may be called more than once (the
        caller keeps their channels intact); later calls get ``#k`` suffixes.

    Returns:
      The model's :class:`Graph`.

    Raises:
      UnsupportedModelError: for a Keras 3 or subclassed model, an unbuilt
        Sequential, or a layer called more than once (a shared layer).
    """
    _check_model(model)
    walker = _Walker(frozenset(allow_shared))
    input_keys = []
    for kt in model.inputs:
        key = walker.new_tensor(kt)
        input_keys.append(key)
    outputs = walker.walk(model, prefix=(), bound={})
    return Graph(
        name=model.name,
        nodes=tuple(walker.nodes),
        shapes=dict(walker.shapes),
        inputs=tuple(input_keys),
        outputs=tuple(outputs),
        bindings=tuple(walker.bindings),
    )


def layer_paths(model, prefix=()):
    """Yields ``(path, layer)`` for every non-model layer, descending into sub-models."""
    for layer in model.layers:
        path = prefix + (layer.name,)
        if _is_submodel(layer):
            yield from layer_paths(layer, path)
        else:
            yield path, layer


def output_layer_names(model) -> frozenset[str]:
    """Names of the layers of ``model`` that produce its outputs (its classifier, say).

    Example:
      >>> output_layer_names(tf_keras.applications.MobileNetV2(weights=None))
      frozenset({'predictions'})
    """
    return frozenset(_producer(t).name for t in model.outputs)


def node_name(path: tuple[str, ...]) -> str:
    """The unique node name of a layer path."""
    return "/".join(path)


def _check_model(model) -> None:
    if not isinstance(model, tf_keras.Model):
        raise UnsupportedModelError(
            f"expected a tf_keras.Model, got {type(model).__module__}.{type(model).__name__}; "
            "build models with tf_keras (Keras 2), not keras 3")
    if not getattr(model, "_is_graph_network", False):
        if isinstance(model, tf_keras.Sequential):
            raise UnsupportedModelError(
                f"Sequential model '{model.name}' is not built: give its first layer an "
                "input_shape or call model.build((None, ...)) before pruning")
        raise UnsupportedModelError(
            f"model '{model.name}' is a subclassed model ({type(model).__name__}); only functional "
            "and Sequential models have a graph to prune: rewrite it with the functional API")


def _is_submodel(layer) -> bool:
    return isinstance(layer, tf_keras.Model)


class _Walker:
    """Accumulates nodes and tensors while descending through (sub-)models."""

    def __init__(self, allow_shared):
        self.allow_shared = allow_shared
        self._calls: dict[tuple, int] = {}
        self.bindings: list[tuple[tuple[str, ...], str]] = []
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple] = {}
        self._keys: dict[int, str] = {}
        self._alive: list[Any] = []  # keeps ids of KerasTensors unique while we run

    def new_tensor(self, kt) -> str:
        key = f"t{len(self.shapes)}"
        self._keys[id(kt)] = key
        self._alive.append(kt)
        self.shapes[key] = _static_shape(kt)
        return key

    def key(self, kt) -> str:
        return self._keys[id(kt)]

    def walk(self, model, prefix: tuple[str, ...], bound: dict[int, str]) -> list[str]:
        """Walks ``model``'s nodes; ``bound`` maps its input tensors to outer keys."""
        self._keys.update(bound)
        nodes = _ordered_nodes(model)
        _check_not_shared(model, nodes, self.allow_shared)
        for node in nodes:
            if node.is_input:
                continue
            self._visit(node, prefix)
        return [self.key(kt) for kt in model.outputs]

    def _visit(self, node, prefix):
        layer = node.layer
        inputs = tuple(self.key(kt) for kt in node.keras_inputs)
        path = prefix + (layer.name,)
        if _is_submodel(layer):
            _check_model(layer)
            bound = {id(inner): outer for inner, outer in zip(layer.inputs, inputs)}
            self.bindings.extend((path + (_producer(inner).name,), outer)
                                 for inner, outer in zip(layer.inputs, inputs))
            if len(layer.inputs) != len(inputs):
                raise UnsupportedModelError(
                    f"sub-model '{node_name(path)}' has {len(layer.inputs)} inputs but is called "
                    f"on {len(inputs)} tensors")
            inner_outputs = self.walk(layer, path, bound)
            for kt, inner_key in zip(tf.nest.flatten(node.outputs), inner_outputs):
                self._keys[id(kt)] = inner_key
                self._alive.append(kt)
            return
        outputs = tuple(self.new_tensor(kt) for kt in tf.nest.flatten(node.outputs))
        constants = tuple(
            _plain(a) for a in node._flat_arguments if not _is_keras_tensor(a))
        name = node_name(path)
        calls = self._calls.get(path, 0)
        self._calls[path] = calls + 1
        if calls:
            name = f"{name}#{calls}"
        self.nodes.append(Node(
            name, path, layer, inputs, outputs,
            tuple(self.shapes[k] for k in inputs), tuple(self.shapes[k] for k in outputs),
            constants))


def _ordered_nodes(model):
    """The model's nodes, inputs first (depth counts from the outputs)."""
    by_depth = model._nodes_by_depth
    ordered = []
    for depth in sorted(by_depth, reverse=True):
        ordered.extend(by_depth[depth])
    return ordered


def _check_not_shared(model, nodes, allow_shared):
    seen = {}
    for node in nodes:
        if node.is_input:
            continue
        layer = node.layer
        if id(layer) in seen and layer.name not in allow_shared:
            raise UnsupportedModelError(
                f"layer '{layer.name}' ({type(layer).__name__}) is shared: it is called "
                f"{sum(n.layer is layer for n in nodes)} times in model '{model.name}'; pruning "
                "would have to keep its channels consistent across calls. Give each call its "
                "own layer, or exclude the layer with ignore=['" + layer.name + "']")
        seen[id(layer)] = node


def _static_shape(kt) -> tuple:
    shape = kt.shape
    if shape.rank is None:
        return ()
    return tuple(shape.as_list()[1:])


def _producer(kt):
    """The layer that produced the Keras tensor ``kt``."""
    return kt._keras_history.layer  # noqa: SLF001


def _is_keras_tensor(x) -> bool:
    return hasattr(x, "_keras_history")


def _plain(value):
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return np.asarray(value)
    return value
