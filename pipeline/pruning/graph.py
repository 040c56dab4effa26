"""Reads a Keras model (tf_keras or Keras 3) into plain, frozen graph data.

Everything that depends on which Keras built the model is behind
:class:`pipeline.pruning.families.Family`; this module walks the calls a
family reports. Everything downstream works on :class:`Graph`: nodes keyed by
unique names, tensors keyed by strings, static shapes without the batch axis.

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

from pipeline.errors import UnsupportedModelError
from pipeline.pruning.families import Family, family_of, package_of
from pipeline.pruning.handlers.base import weight_names


@dataclasses.dataclass(frozen=True)
class Node:
    """One call of one layer (or Keras 3 operation).

    Attributes:
      name: unique name: the layer name, prefixed by enclosing sub-models.
      path: sub-model names then the layer name, to locate its config.
      layer: the layer object (read, never modified).
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

    @property
    def weights(self) -> tuple:
        """The layer's weights; none for a Keras 3 operation such as ``keras.ops.add``."""
        return tuple(getattr(self.layer, "weights", ()))

    @property
    def named_weights(self) -> dict[str, Any]:
        """Handler name (``"kernel"``, ``"gamma"``) -> weight, in the layer's order."""
        return dict(zip(weight_names(self.layer), self.weights))


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
      family: the :class:`~pipeline.pruning.families.Family` that built the model.
    """

    name: str
    nodes: tuple[Node, ...]
    shapes: dict[str, tuple]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    bindings: tuple[tuple[tuple[str, ...], str], ...] = ()
    family: Family | None = None

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def read_graph(model, allow_shared=frozenset()) -> Graph:
    """Flattens a built functional or Sequential model of either Keras.

    Args:
      model: a ``tf_keras.Model`` or ``keras.Model`` (Keras 3) with a graph.
      allow_shared: names of layers that may be called more than once (the
        caller keeps their channels intact); later calls get ``#k`` suffixes.

    Returns:
      The model's :class:`Graph`.

    Raises:
      UnsupportedModelError: for a subclassed model, an unbuilt Sequential, a
        layer of the other Keras inside the model, or a layer called more than
        once (a shared layer).
    """
    family = family_of(model)
    family.check_model(model)
    walker = _Walker(family, frozenset(allow_shared))
    input_keys = [walker.new_tensor(kt) for kt in family.inputs(model)]
    outputs = walker.walk(model, prefix=(), bound={})
    return Graph(
        name=model.name,
        nodes=tuple(walker.nodes),
        shapes=dict(walker.shapes),
        inputs=tuple(input_keys),
        outputs=tuple(outputs),
        bindings=tuple(walker.bindings),
        family=family,
    )


def layer_paths(model, prefix=()):
    """Yields ``(path, layer)`` for every non-model layer, descending into sub-models."""
    family = family_of(model)
    for layer in model.layers:
        path = prefix + (layer.name,)
        if family.is_submodel(layer):
            yield from layer_paths(layer, path)
        else:
            yield path, layer


def output_layer_names(model) -> frozenset[str]:
    """Names of the layers of ``model`` that produce its outputs (its classifier, say).

    Example:
      >>> output_layer_names(tf_keras.applications.MobileNetV2(weights=None))
      frozenset({'predictions'})
    """
    family = family_of(model)
    return frozenset(family.producer(t).name for t in family.outputs(model))


def node_name(path: tuple[str, ...]) -> str:
    """The unique node name of a layer path."""
    return "/".join(path)


class _Walker:
    """Accumulates nodes and tensors while descending through (sub-)models."""

    def __init__(self, family: Family, allow_shared):
        self.family = family
        self.allow_shared = allow_shared
        self._calls: dict[tuple, int] = {}
        self.bindings: list[tuple[tuple[str, ...], str]] = []
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple] = {}
        self._keys: dict[int, str] = {}
        self._alive: list[Any] = []  # keeps ids of Keras tensors unique while we run

    def new_tensor(self, kt) -> str:
        key = f"t{len(self.shapes)}"
        self._keys[id(kt)] = key
        self._alive.append(kt)
        self.shapes[key] = self.family.shape(kt)
        return key

    def key(self, kt) -> str:
        return self._keys[id(kt)]

    def walk(self, model, prefix: tuple[str, ...], bound: dict[int, str]) -> list[str]:
        """Walks ``model``'s calls; ``bound`` maps its input tensors to outer keys."""
        self._keys.update(bound)
        calls = list(self.family.calls(model))
        _check_not_shared(model, calls, self.allow_shared)
        for call in calls:
            self._visit(call, prefix, model)
        return [self.key(kt) for kt in self.family.outputs(model)]

    def _visit(self, call, prefix, model):
        layer = call.layer
        path = prefix + (layer.name,)
        self._check_family(call, path, model)
        inputs = tuple(self.key(kt) for kt in call.inputs)
        if self.family.is_submodel(layer):
            self._visit_submodel(call, path, inputs)
            return
        outputs = tuple(self.new_tensor(kt) for kt in call.outputs)
        name = node_name(path)
        calls = self._calls.get(path, 0)
        self._calls[path] = calls + 1
        if calls:
            name = f"{name}#{calls}"
        self.nodes.append(Node(
            name, path, layer, inputs, outputs,
            tuple(self.shapes[k] for k in inputs), tuple(self.shapes[k] for k in outputs),
            tuple(_plain(c) for c in call.constants)))

    def _visit_submodel(self, call, path, inputs):
        layer = call.layer
        self.family.check_model(layer)
        inner_inputs = self.family.inputs(layer)
        if len(inner_inputs) != len(inputs):
            raise UnsupportedModelError(
                f"sub-model '{node_name(path)}' has {len(inner_inputs)} inputs but is called "
                f"on {len(inputs)} tensors")
        bound = {id(inner): outer for inner, outer in zip(inner_inputs, inputs)}
        self.bindings.extend((path + (self.family.producer(inner).name,), outer)
                             for inner, outer in zip(inner_inputs, inputs))
        inner_outputs = self.walk(layer, path, bound)
        for kt, inner_key in zip(call.outputs, inner_outputs):
            self._keys[id(kt)] = inner_key
            self._alive.append(kt)

    def _check_family(self, call, path, model):
        """Refuses a layer, or a captured variable, of the other Keras inside this model.

        tf_keras traces a Keras 3 sub-model called on its tensors into TF ops
        that capture the Keras 3 variables as constants: pruning would silently
        find nothing to prune there.
        """
        layer = call.layer
        foreign = [c for c in call.constants
                   if package_of(type(c)) not in (None, self.family.package)]
        if self.family.owns(layer) and not foreign:
            return
        obj = foreign[0] if foreign else layer
        other = {"keras": "Keras 3", "tf_keras": "tf_keras"}.get(package_of(type(obj)),
                                                                  type(obj).__module__)
        raise UnsupportedModelError(
            f"layer '{node_name(path)}' ({type(layer).__name__}) holds a {other} "
            f"{type(obj).__name__} inside the {self.family.name} {self.family.version()} model "
            f"'{model.name}': build the whole model with one Keras (keras for Keras 3, or "
            "tf_keras)")


def _check_not_shared(model, calls, allow_shared):
    seen = set()
    for call in calls:
        layer = call.layer
        if id(layer) in seen and layer.name not in allow_shared:
            raise UnsupportedModelError(
                f"layer '{layer.name}' ({type(layer).__name__}) is shared: it is called "
                f"{sum(c.layer is layer for c in calls)} times in model '{model.name}'; pruning "
                "would have to keep its channels consistent across calls. Give each call its "
                "own layer, or exclude the layer with ignore=['" + layer.name + "']")
        seen.add(id(layer))


def _plain(value):
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return np.asarray(value)
    return value
