"""pipeline.pruning.handlers: how each layer family maps, weighs and narrows its channels.

The registry and the sparse-kernel declarations are
tests/pruning/handlers_registry_test.py; output-preservation through every
handler is tests/pruning/equivalence_test.py. Here each family's trace (what
is tied, passed or kept whole), its weight axes and its config edits.
"""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import pipeline
from pipeline.pruning import handlers
from pipeline.pruning.handlers import base, conv, merge, reshape

L = tf_keras.layers


def analysed(shape, *layers, head=True):
    """``analyse`` of Input(shape) -> c Conv2D(6, 1) -> layers... (-> GAP -> Dense(2))."""
    x = inputs = tf_keras.Input(shape)
    x = L.Conv2D(6, 1, name="c")(x)
    for layer in layers:
        x = layer(x)
    if head:
        if len(x.shape) > 2:
            x = L.GlobalAveragePooling2D(name="gap")(x)
        x = L.Dense(2, name="head")(x)
    model = tf_keras.Model(inputs, x)
    return model, pipeline.analyse(model)


def layer_of(analysis, name):
    return next(l for l in analysis.layers if l.node.name == name)


def axes_of(layer):
    return {(a.weight, a.axis, a.role, a.scored) for a in layer.axes}


def group_names(analysis):
    return [g.name for g in analysis.groups]


@pytest.mark.parametrize("cls", [L.Conv2D, L.Dense, L.BatchNormalization, L.ReLU, L.Add,
                                 L.Concatenate, L.Flatten, L.Reshape, L.Softmax, L.PReLU])
def test_built_in_classes_are_registered(cls):
    assert cls in handlers.registered_classes()
    assert isinstance(handlers.find_handler(cls), handlers.Handler)


def test_a_subclass_is_not_implied():
    class MyConv(L.Conv2D):
        pass
    assert handlers.find_handler(MyConv) is None


def test_conv_and_dense_declare_filters_and_input_slices():
    model, analysis = analysed((4, 4, 3), L.Conv2D(5, 3, name="c2"))
    assert axes_of(layer_of(analysis, "c2")) == {
        ("kernel", -1, "out", True), ("kernel", -2, "in", True), ("bias", 0, "out", True)}
    assert axes_of(layer_of(analysis, "head")) == {
        ("kernel", 1, "out", True), ("kernel", 0, "in", True), ("bias", 0, "out", True)}
    no_bias = analysed((4, 4, 3), L.Conv2D(5, 3, use_bias=False, name="c2"))[1]
    assert axes_of(layer_of(no_bias, "c2")) == {("kernel", -1, "out", True),
                                                 ("kernel", -2, "in", True)}


def test_conv_edit_config_sets_the_filters():
    config = {"filters": 8, "groups": 1}
    model, analysis = analysed((4, 4, 3), L.Conv2D(8, 3, name="c2"))
    conv.ConvHandler().edit_config(config, layer_of(analysis, "c2").node, [6], [3])
    assert config == {"filters": 3, "groups": 1}


def test_batchnorm_slices_four_weights_and_scores_two():
    model, analysis = analysed((4, 4, 3), L.BatchNormalization(name="bn"))
    bn = layer_of(analysis, "bn")
    assert axes_of(bn) == {("gamma", -1, "channel", True), ("beta", -1, "channel", True),
                           ("moving_mean", -1, "channel", False),
                           ("moving_variance", -1, "channel", False)}
    gamma = next(a for a in bn.axes if a.weight == "gamma")
    assert "bn_scale" in gamma.tags
    np.testing.assert_array_equal(bn.outs[0], bn.ins[0])


def test_batchnorm_over_another_axis_is_a_pass_through():
    model, analysis = analysed((4, 6, 3), L.BatchNormalization(axis=1, name="bn"))
    assert layer_of(analysis, "bn").axes == ()
    assert group_names(analysis) == ["c"]


def test_layer_norm_over_channels_is_sliced():
    """LayerNorm over channels can't be output-preserving, but its weights are sliced."""
    def build(w):
        x = inp = tf_keras.Input((4, 4, 3))
        x = L.Conv2D(w, 1, name="c")(x)
        x = L.LayerNormalization(name="ln")(x)
        return tf_keras.Model(inp, L.Conv2D(2, 1, name="head")(x))

    model = build(8)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.weights])
    result = pipeline.prune(model, 0.5, target="filters")
    assert result.model.count_params() == build(4).count_params()
    kept = result.plan.kept()["c"]
    np.testing.assert_array_equal(result.model.get_layer("ln").get_weights()[0],
                                  model.get_layer("ln").get_weights()[0][kept])


@pytest.mark.parametrize("layer, prunable", [
    (L.Activation("relu", name="act"), True),
    (L.Activation("softmax", name="act"), False),  # normalises over the channels
    (L.Softmax(axis=-1, name="act"), False),
    (L.Softmax(axis=1, name="act"), True),  # over height: channels stay independent
])
def test_activations_pass_channels_unless_they_mix_them(layer, prunable):
    _, analysis = analysed((4, 4, 3), layer)
    assert group_names(analysis) == (["c"] if prunable else [])


class Mixer(L.Layer):
    """A custom layer that mixes channels (a pruner cannot follow it)."""

    def call(self, x):
        return x + tf.reduce_mean(x, axis=-1, keepdims=True)


class Scale(L.Layer):
    """A custom per-channel layer whose config records its width."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.width = width

    def build(self, shape):
        self.scale = self.add_weight(name="scale", shape=(self.width,), initializer="ones")

    def call(self, x):
        return x * self.scale


@pytest.fixture
def own_registry(monkeypatch):
    """The registry as it is, restored after the test."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))


def test_an_opaque_layer_keeps_its_producers_channels(own_registry):
    handlers.register_handler(Mixer, handlers.opaque())
    _, analysis = analysed((4, 4, 3), Mixer(name="mix"), L.Conv2D(5, 1, name="after"))
    assert group_names(analysis) == ["after"]  # c feeds the opaque layer: kept whole


def test_per_channel_helper_slices_a_custom_weight_and_edits_its_width(own_registry):
    handlers.register_handler(Scale, handlers.per_channel(("scale",), config_key="width"))
    _, analysis = analysed((4, 4, 3), Scale(6, name="s"))
    layer = layer_of(analysis, "s")
    assert axes_of(layer) == {("scale", -1, "channel", True)}
    config = {"width": 6}
    layer.handler.edit_config(config, layer.node, [4], [4])
    assert config == {"width": 4}
    assert group_names(analysis) == ["c"]


def test_passthrough_helper_passes_a_custom_layers_channels(own_registry):
    handlers.register_handler(Mixer, handlers.passthrough())  # a user's claim, taken as given
    _, analysis = analysed((4, 4, 3), Mixer(name="mix"))
    mix = layer_of(analysis, "mix")
    np.testing.assert_array_equal(mix.outs[0], mix.ins[0])
    assert mix.axes == () and group_names(analysis) == ["c"]


def test_a_coupler_ties_same_width_inputs_and_leaves_broadcast_ones():
    x = inputs = tf_keras.Input((4, 4, 3))
    a = L.Conv2D(6, 1, name="a")(x)
    b = L.Conv2D(6, 1, name="b")(x)
    gate = L.Conv2D(1, 1, activation="sigmoid", name="gate")(x)
    y = L.Multiply(name="mul")([L.Add(name="add")([a, b]), gate])
    model = tf_keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(y)))
    analysis = pipeline.analyse(model)
    # a and b are tied; the one-channel gate broadcasts, so it is a group of its own
    assert [(g.name, g.producers, g.size) for g in analysis.groups] == [
        ("a", ("a", "b"), 6), ("gate", ("gate",), 1)]
    assert isinstance(handlers.find_handler(L.Multiply), merge.CouplerHandler)


def test_concatenate_on_another_axis_couples_its_inputs():
    x = inputs = tf_keras.Input((4, 4, 3))
    a = L.Conv2D(6, 1, name="a")(x)
    b = L.Conv2D(6, 1, name="b")(x)
    y = L.Concatenate(axis=1, name="cat")([a, b])
    model = tf_keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(y)))
    analysis = pipeline.analyse(model)
    assert [(g.name, g.producers, g.size) for g in analysis.groups] == [("a", ("a", "b"), 6)]


@pytest.mark.parametrize("layer, kept_whole", [
    (L.Reshape((16, 6), name="r"), False),  # the channel axis survives
    (L.Reshape((4, 24), name="r"), False),  # channel c tiled at c, c + 6, ... like Flatten
    (L.Reshape((4, 4, 2, 3), name="r"), True),  # channels split over two axes
    (L.Permute((3, 1, 2), name="r"), True),  # channels moved off the last axis
    (L.Permute((2, 1, 3), name="r"), False),
])
def test_reshapes_follow_the_channel_axis_or_keep_it_whole(layer, kept_whole):
    _, analysis = analysed((4, 4, 3), layer, L.Flatten(name="flat"))
    assert group_names(analysis) == ([] if kept_whole else ["c"])


def test_reshape_edit_config_narrows_the_target_shape():
    model, analysis = analysed((4, 4, 3), L.Reshape((16, 6), name="r"), L.Flatten(name="flat"))
    config = {"target_shape": (16, 6)}
    reshape.ReshapeHandler().edit_config(config, layer_of(analysis, "r").node, [4], [4])
    assert config == {"target_shape": (16, 4)}


@pytest.mark.parametrize("op, prunable", [
    (lambda x: x * 0.5, True),  # a scalar: elementwise
    (lambda x: tf.nn.relu6(x + 3.0), True),
    (lambda x: x * np.arange(6, dtype="float32"), False),  # a per-channel constant
    (lambda x: tf.reduce_sum(x, axis=-1, keepdims=True) + x, False),
])
def test_tf_ops_pass_channels_only_when_elementwise(op, prunable):
    x = inputs = tf_keras.Input((4, 4, 3))
    y = op(L.Conv2D(6, 1, name="c")(x))
    model = tf_keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(y)))
    assert group_names(pipeline.analyse(model)) == (["c"] if prunable else [])
