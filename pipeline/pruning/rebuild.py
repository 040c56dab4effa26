"""Physically removes channels: a narrower model with the surviving weights copied in.

The rebuild edits the model's own config (filters, units, target shapes...,
each layer's handler says what), lets tf_keras build the new graph from it,
then copies every weight, sliced along the axes its handler declared. Layer
names, nesting and the original model are left as they were.
"""
from __future__ import annotations

import copy

import numpy as np
import tf_keras

from pipeline.pruning.channels import Analysis
from pipeline.errors import PlanError
from pipeline.pruning.graph import layer_paths
from pipeline.pruning.handlers.base import short_name


def rebuild(model, analysis: Analysis, keep: np.ndarray):
    """Builds the narrower twin of ``model`` that keeps the ``keep``-ed channels.

    Args:
      model: the analysed tf_keras model (unchanged).
      analysis: its :class:`~pipeline.pruning.channels.Analysis`.
      keep: boolean per channel id, from ``analysis.keep_mask``.

    Returns:
      A new tf_keras model with the same layer names and sliced weights.

    Raises:
      PlanError: the plan would leave a layer with no channels.
    """
    config = copy.deepcopy(model.get_config())
    _drop_build_configs(config)
    for layer in analysis.layers:
        _edit(config, layer, keep)
    for path, key in analysis.graph.bindings:
        _narrow_input(config, path, int(np.count_nonzero(keep[analysis.tensor_ids[key]])))
    custom_objects = {type(l).__name__: type(l) for _, l in layer_paths(model)}
    new_model = type(model).from_config(config, custom_objects=custom_objects)
    pairs = []
    for layer in analysis.layers:
        if "#" in layer.node.name or not layer.node.layer.weights:
            continue  # a shared layer's weights are copied once, with its first call
        target = _get_layer(new_model, layer.node.path)
        pairs.extend(zip(target.weights, sliced_weights(layer, keep)))
    tf_keras.backend.batch_set_value(pairs)
    return new_model


def sliced_weights(layer, keep: np.ndarray) -> list[np.ndarray]:
    """The layer's weights with dropped channels removed along every declared axis."""
    values = layer.node.layer.get_weights()
    names = [short_name(w) for w in layer.node.layer.weights]
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


def _narrow_input(config, path, width):
    """A sub-model's InputLayer records its width; make it the pruned one."""
    try:
        entry = _find_entry(config, path)
    except PlanError:
        return  # a Sequential built on first call records no InputLayer
    shape = entry["config"].get("batch_input_shape")
    if entry.get("class_name") == "InputLayer" and shape:
        entry["config"]["batch_input_shape"] = tuple(shape[:-1]) + (width,)


def _drop_build_configs(config):
    """Layers must build from the new graph's shapes, not the recorded old ones."""
    for entry in config.get("layers", ()):
        entry.pop("build_config", None)
        if "layers" in entry.get("config", {}):
            _drop_build_configs(entry["config"])


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
