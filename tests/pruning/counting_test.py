"""pipeline.pruning.counting: MACs and parameters by the documented convention.

The convention on Conv2D, depthwise, separable, grouped, transposed convs and
Dense after Flatten is tests/api_test.py's; here the other ranks, strides,
nesting, shared layers, layers that count zero, and the per-layer counts
under a keep mask.
"""
import numpy as np
import tf_keras

import pipeline
from pipeline.pruning import counting

L = tf_keras.layers


def model_of(shape, *layers):
    x = inputs = tf_keras.Input(shape)
    for layer in layers:
        x = layer(x)
    return tf_keras.Model(inputs, x)


def test_a_conv2d_costs_positions_times_kernel_times_channels():
    assert pipeline.count_macs(model_of((8, 8, 3), L.Conv2D(16, 3, padding="same"))) == (
        8 * 8 * 3 * 3 * 3 * 16)
    assert pipeline.count_macs(model_of((9, 9, 4), L.Conv2D(5, 3, strides=2))) == (
        4 * 4 * 3 * 3 * 4 * 5)  # valid padding, stride 2: 4x4 outputs


def test_other_ranks():
    assert pipeline.count_macs(model_of((10, 3), L.Conv1D(4, 3, padding="same"))) == (
        10 * 3 * 3 * 4)
    assert pipeline.count_macs(model_of((4, 4, 4, 2), L.Conv3D(3, 2))) == 3 * 3 * 3 * 8 * 2 * 3
    assert pipeline.count_macs(model_of((7, 5), L.Dense(6))) == 7 * 5 * 6  # per leading position


def test_normalisation_activations_pooling_and_merges_count_zero():
    x = inputs = tf_keras.Input((8, 8, 4))
    y = L.BatchNormalization()(x)
    y = L.ReLU()(y)
    y = L.MaxPooling2D()(L.Add()([y, L.Activation("relu")(x)]))
    model = tf_keras.Model(inputs, L.GlobalAveragePooling2D()(y))
    assert pipeline.count_macs(model) == 0
    assert pipeline.count_params(model) == model.count_params() == 16


def test_nested_models_and_shared_layers_are_counted_per_call():
    block = tf_keras.Sequential([L.Conv2D(4, 1, name="inner")], name="block")
    shared = L.Conv2D(4, 1, name="shared")
    x = inputs = tf_keras.Input((5, 5, 4))
    model = tf_keras.Model(inputs, shared(shared(block(x))))
    assert pipeline.count_macs(model) == 3 * (5 * 5 * 4 * 4)


def test_a_layer_without_a_handler_counts_zero():
    class Mystery(L.Layer):
        def build(self, shape):
            self.w = self.add_weight(name="w", shape=(shape[-1], 4))

        def call(self, x):
            return x @ self.w

    model = model_of((6,), L.Dense(8), Mystery())
    assert pipeline.count_macs(model) == 6 * 8


def test_layer_counts_follow_the_keep_mask():
    x = inputs = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Conv2D(16, 3, name="c2")(x)
    analysis = pipeline.analyse(tf_keras.Model(inputs, L.GlobalAveragePooling2D()(x)))
    layers = {l.node.name: l for l in analysis.layers}
    full = np.ones(analysis.n_ids, bool)
    keep = analysis.keep_mask({"c1": np.arange(5)})
    assert counting.layer_macs(layers["c1"], full) == 8 * 8 * 9 * 3 * 8
    assert counting.layer_macs(layers["c1"], keep) == 8 * 8 * 9 * 3 * 5
    assert counting.layer_macs(layers["c2"], keep) == 6 * 6 * 9 * 5 * 16
    assert counting.layer_params(layers["c1"], keep) == 9 * 3 * 5 + 5
    assert counting.layer_params(layers["bn"], keep) == 4 * 5
    assert counting.layer_params(layers["c2"], keep) == 9 * 5 * 16 + 16
    assert counting.layer_macs(layers["bn"], keep) == 0
