"""Physically removes channels: a narrower model with the surviving weights copied in.

The rebuild edits the model's own config (filters, units, target shapes...,
each layer's handler says what), lets the model's own Keras (tf_keras or
Keras 3, through its :class:`~pipeline.pruning.families.Family`) build the new
graph from it, then copies every weight, sliced along the axes its handler
declared. Layer names, nesting and the original model are left as they were.

Each rebuilt layer's variables are created holding their sliced values (its
initializers are swapped for a replay of them) instead of random values that
the copy would replace: drawing those took a third of a ResNet50 rebuild. The
layer's own initializers are put back afterwards, so the new model's config is
the one Keras would have built.
"""
from __future__ import annotations

import copy

import numpy as np

from pipeline.pruning.channels import Analysis
from pipeline.errors import PlanError


def rebuild(model, analysis: Analysis, keep: np.ndarray):
    """Builds the narrower twin of ``model`` that keeps the ``keep``-ed channels.

    Args:
      model: the analysed model (unchanged).
      analysis: its :class:`~pipeline.pruning.channels.Analysis`.
      keep: boolean per channel id, from ``analysis.keep_mask``.

    Returns:
      A new model of the same Keras and class, with the same layer names and
      sliced weights.

    Raises:
      PlanError: the plan would leave a layer with no channels.
    """
    family = analysis.graph.family
    config = copy.deepcopy(model.get_config())
    family.drop_build_state(config)
    for layer in analysis.layers:
        _edit(config, layer, keep)
    for path, key in analysis.graph.bindings:
        _narrow_input(family, config, path,
                      int(np.count_nonzero(keep[analysis.tensor_ids[key]])))
    copied = []  # (layer, its sliced weights, the initializer keys replaying them)
    for layer in analysis.layers:
        if "#" not in layer.node.name and layer.node.weights:  # shared: first call only
            values = sliced_weights(layer, keep)
            copied.append((layer, values, _replay_initializers(config, layer, values)))
    new_model = family.rebuild_from_config(model, config)
    pairs = []
    for layer, values, replayed in copied:
        target = _get_layer(new_model, layer.node.path)
        if len(target.weights) != len(values):
            raise PlanError(f"layer '{layer.node.name}' was rebuilt with {len(target.weights)} "
                            f"weights where it had {len(values)}; its handler's config edit "
                            "does not match the layer")
        pairs.extend((variable, value) for variable, value in zip(target.weights, values)
                     if not np.array_equal(variable.numpy(), value))
        for name in replayed:
            setattr(target, name, copy.deepcopy(getattr(layer.node.layer, name)))
    family.assign(pairs)  # only where the replay could not tell same-shaped weights apart
    return new_model


class _Replay:
    """An initializer that hands back a layer's sliced weights, matched by shape.

    Keras builds a layer's variables from its initializers; handing them their
    final values skips drawing random ones and copying over them. A layer that
    creates two weights of one shape in another order than it lists them gets
    them swapped here: the rebuild compares every variable with its value and
    assigns the few that differ.
    """

    def __init__(self, values):
        self._values = values
        self._used = [False] * len(values)

    def __call__(self, shape, dtype=None, **kwargs):
        del kwargs
        for index, value in enumerate(self._values):
            if not self._used[index] and tuple(value.shape) == tuple(shape):
                self._used[index] = True
                return value
        return np.zeros(tuple(shape), np.float32)


def _replay_initializers(config, layer, values) -> list[str]:
    """Points the layer's ``*_initializer`` entries at one :class:`_Replay`; returns their keys.

    Only entries the original layer keeps as an attribute of the same name are
    changed, so that the rebuild can put the layer's own initializers back.
    """
    entry = _find_entry(config, layer.node.path)["config"]
    original = layer.node.layer
    names = [key for key, value in entry.items()
             if key.endswith("_initializer") and value is not None
             and getattr(original, key, None) is not None]
    replay = _Replay(values)
    for key in names:
        entry[key] = replay
    return names


def sliced_weights(layer, keep: np.ndarray) -> list[np.ndarray]:
    """The layer's weights with dropped channels removed along every declared axis."""
    values = layer.node.layer.get_weights()
    names = list(layer.node.named_weights)
    for axis in layer.axes:
        index = names.index(axis.weight)
        kept = np.flatnonzero(keep[axis.ids])
        if len(kept) < len(axis.ids):
            values[index] = np.take(values[index], kept, axis=axis.axis)
    return values


def _edit(config, layer, keep):
    in_counts = [int(np.count_nonzero(keep[ids])) for ids in layer.ins]
    out_counts = [int(np.count_nonzero(keep[ids])) for ids in layer.outs]
    full_in = [len(ids) for ids in layer.ins]
    full_out = [len(ids) for ids in layer.outs]
    if in_counts == full_in and out_counts == full_out:
        return
    if 0 in out_counts and 0 not in full_out:
        raise PlanError(f"the plan removes every channel of layer '{layer.node.name}'; "
                        "keep at least one (min_filters >= 1)")
    entry = _find_entry(config, layer.node.path)
    layer.handler.edit_config(entry["config"], layer.node, in_counts, out_counts)


def _narrow_input(family, config, path, width):
    """A sub-model's InputLayer records its width; make it the pruned one."""
    try:
        entry = _find_entry(config, path)
    except PlanError:
        return  # a Sequential built on first call records no InputLayer
    family.narrow_input(entry, width)


def _find_entry(config, path):
    for name in path:
        entry = next((e for e in config["layers"] if e["config"]["name"] == name), None)
        if entry is None:
            raise PlanError(f"layer '{'/'.join(path)}' is missing from the model config")
        config = entry["config"]
    return entry


def _get_layer(model, path):
    for name in path:
        model = model.get_layer(name)
    return model
