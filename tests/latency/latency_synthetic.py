"""Shared by the latency tests: tiny chain models, their cost layers, synthetic tables.

A synthetic table's points follow a formula exactly, so the allocator and the
refine loop can be checked against numbers worked out by hand, with nothing
timed.
"""
import numpy as np
import tf_keras

import pipeline
from pipeline.latency import table as latency_table
from pipeline.latency.allocate import Allocator
from pipeline.pruning import selection

L = tf_keras.layers


def chain(widths, size=8, channels=4, kernel=1, name="chain", K=tf_keras):
    """Input -> 1x1 convs of ``widths`` -> GAP -> Dense(10): one prunable group per conv,
    in Keras ``K``."""
    K.utils.set_random_seed(0)
    x = inputs = K.Input((size, size, channels))
    for i, w in enumerate(widths):
        x = K.layers.Conv2D(w, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inputs, K.layers.Dense(10, name="head")(x), name=name)


def setup(model, scores=None, constraints=selection.Constraints(), utility="log"):
    """(analysis, planner, allocator, cost layers) of ``model``, equal scores by default."""
    analysis = pipeline.analyse(model)
    scores = scores or {g.name: np.ones(g.size) for g in analysis.groups}
    plan = selection.planner(analysis, scores, constraints)
    alloc = Allocator(plan, scores, utility)
    layers = latency_table.cost_layers(analysis, plan.keep_mask(alloc.floor_counts()))
    return analysis, plan, alloc, layers


def synthetic(layers, ms, model_ms=None, device="synthetic"):
    """A table whose points follow ``ms(layer, c_in, c_out)`` exactly."""
    table = latency_table.LatencyTable(device, {}, model_ms)
    for layer in layers:
        for point in layer.points():
            if not table.has(layer.key, point):
                table.add(layer, point, ms(layer, *point))
    return table


def write_device_table(table, path, device):
    """Writes ``table`` as a device's table file named ``device``; returns the path as str."""
    table.device = device
    path.write_text(table.to_json())
    return str(path)
