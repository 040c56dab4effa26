"""pipeline.pruning.rebuild: the narrower model, its config edits and its sliced weights.

That pruning dead channels preserves the outputs, for every supported
layer, is tests/pruning/equivalence_test.py; here the rebuild of a known keep
mask, weight by weight.
"""
import functools

import numpy as np
import pytest
import tf_keras

import pipeline
from pipeline.pruning import rebuild as rebuilding
from pipeline.pruning.handlers import per_channel
from kerases import KERAS_IDS, KERASES

L = tf_keras.layers
KEEP_C1, KEEP_C2 = [1, 3, 4, 7], [0, 2, 5, 6, 8, 9, 10, 15]


def tiny(c1=8, c2=16):
    x = inputs = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(c1, 3, padding="same", name="c1")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(c2, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tf_keras.Model(inputs, L.Dense(3, name="head")(x), name="tiny")


@pytest.fixture(scope="module")
def rebuilt():
    model = tiny()
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.weights])
    analysis = pipeline.analyse(model)
    keep = analysis.keep_mask({"c1": np.array(KEEP_C1), "c2": np.array(KEEP_C2)})
    return model, rebuilding.rebuild(model, analysis, keep)


def test_the_narrower_model_has_the_narrow_architectures_parameter_count(rebuilt):
    model, narrow = rebuilt
    assert narrow.count_params() == tiny(c1=4, c2=8).count_params()
    assert [l.name for l in narrow.layers] == [l.name for l in model.layers]
    assert narrow.get_layer("c1").filters == 4 and narrow.get_layer("c2").filters == 8
    assert narrow.name == "tiny" and narrow.output_shape == model.output_shape
    assert model.get_layer("c1").filters == 8  # the original is left as it was


def test_weights_are_sliced_along_every_declared_axis(rebuilt):
    model, narrow = rebuilt
    k1, b1 = model.get_layer("c1").get_weights()
    np.testing.assert_array_equal(narrow.get_layer("c1").get_weights()[0], k1[..., KEEP_C1])
    np.testing.assert_array_equal(narrow.get_layer("c1").get_weights()[1], b1[KEEP_C1])
    for old, new in zip(model.get_layer("bn").get_weights(), narrow.get_layer("bn").get_weights()):
        np.testing.assert_array_equal(new, old[KEEP_C1])  # gamma, beta and both statistics
    k2, b2 = model.get_layer("c2").get_weights()
    np.testing.assert_array_equal(narrow.get_layer("c2").get_weights()[0],
                                  k2[:, :, KEEP_C1, :][..., KEEP_C2])
    np.testing.assert_array_equal(narrow.get_layer("c2").get_weights()[1], b2[KEEP_C2])
    dense, bias = model.get_layer("head").get_weights()
    np.testing.assert_array_equal(narrow.get_layer("head").get_weights()[0], dense[KEEP_C2])
    np.testing.assert_array_equal(narrow.get_layer("head").get_weights()[1], bias)


def test_keeping_everything_rebuilds_the_same_model():
    model = tiny()
    analysis = pipeline.analyse(model)
    same = rebuilding.rebuild(model, analysis, analysis.keep_mask({}))
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(same(x).numpy(), model(x).numpy())


def test_a_nested_block_is_narrowed_inside_its_sub_model():
    block = tf_keras.Sequential([L.Conv2D(6, 3, padding="same", name="inner"),
                                 L.ReLU(name="inner_relu")], name="block")
    sub_in = tf_keras.Input((8, 8, 6))
    sub = tf_keras.Model(sub_in, L.Conv2D(5, 1, name="sub")(sub_in), name="submodel")
    x = inputs = tf_keras.Input((8, 8, 3))
    model = tf_keras.Model(inputs, L.Dense(2, name="head")(
        L.GlobalAveragePooling2D(name="gap")(sub(block(x)))))
    analysis = pipeline.analyse(model)
    keep = analysis.keep_mask({"block/inner": np.array([0, 5])})
    narrow = rebuilding.rebuild(model, analysis, keep)
    assert narrow.get_layer("block").get_layer("inner").filters == 2
    assert narrow.get_layer("submodel").input_shape == (None, 8, 8, 2)
    np.testing.assert_array_equal(
        narrow.get_layer("submodel").get_layer("sub").get_weights()[0],
        model.get_layer("submodel").get_layer("sub").get_weights()[0][:, :, [0, 5], :])


def test_removing_every_channel_of_a_layer_is_refused():
    model = tiny()
    analysis = pipeline.analyse(model)
    keep = analysis.keep_mask({"c1": np.array([], np.int64)})
    with pytest.raises(pipeline.PlanError, match="removes every channel of layer 'c1'"):
        rebuilding.rebuild(model, analysis, keep)


def test_sliced_weights_of_one_layer():
    model = tiny()
    analysis = pipeline.analyse(model)
    keep = analysis.keep_mask({"c1": np.array([2, 3])})
    bn = next(l for l in analysis.layers if l.node.name == "bn")
    values = rebuilding.sliced_weights(bn, keep)
    assert [v.shape for v in values] == [(2,)] * 4


@functools.cache
def two_scales(K):
    """A per-channel layer that creates its second listed weight first (same shapes)."""

    class TwoScales(K.layers.Layer):
        def __init__(self, width, a_initializer="ones", b_initializer="zeros", **kwargs):
            super().__init__(**kwargs)
            self.width = width
            self.a_initializer = K.initializers.get(a_initializer)
            self.b_initializer = K.initializers.get(b_initializer)

        def build(self, input_shape):
            self.b = self.add_weight(name="b", shape=(self.width,), trainable=False,
                                     initializer=self.b_initializer)
            self.a = self.add_weight(name="a", shape=(self.width,), initializer=self.a_initializer)

        def call(self, x):
            return x * self.a + self.b

        def get_config(self):
            return {**super().get_config(), "width": self.width,
                    "a_initializer": K.initializers.serialize(self.a_initializer),
                    "b_initializer": K.initializers.serialize(self.b_initializer)}

    pipeline.register_handler(TwoScales, per_channel(("a", "b"), config_key="width"))
    return TwoScales


def initialized(K):
    """Layers with initializers other than their defaults, and a layer listing weights out of order."""
    L = K.layers
    x = inputs = K.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="c1", kernel_initializer=K.initializers.HeNormal(seed=3),
                 bias_initializer="ones")(x)
    x = L.BatchNormalization(name="bn", moving_variance_initializer=K.initializers.Constant(2.0),
                             gamma_initializer="zeros")(x)
    x = two_scales(K)(8, a_initializer=K.initializers.Constant(3.0), name="scales")(x)
    x = L.DepthwiseConv2D(3, name="dw", depthwise_initializer="he_uniform")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inputs, L.Dense(3, name="head", kernel_initializer="orthogonal")(x))


@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
def test_rebuilt_layers_keep_their_own_initializers_and_every_sliced_weight(K):
    model = initialized(K)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.weights])
    analysis = pipeline.analyse(model)
    keep_ids = [0, 2, 3, 6]
    keep = analysis.keep_mask({"c1": np.array(keep_ids)})
    narrow = rebuilding.rebuild(model, analysis, keep)
    for old, new in zip(model.layers, narrow.layers):
        old_config, new_config = old.get_config(), new.get_config()
        for key in [k for k in old_config if k.endswith("_initializer")]:
            assert new_config[key] == old_config[key], (old.name, key)
    for layer in analysis.layers:
        for new, expected in zip(narrow.get_layer(layer.node.name).get_weights(),
                                 rebuilding.sliced_weights(layer, keep)):
            np.testing.assert_array_equal(new, expected, err_msg=layer.node.name)
    scales = narrow.get_layer("scales")  # created b first, lists a first
    np.testing.assert_array_equal(scales.a.numpy(), model.get_layer("scales").a.numpy()[keep_ids])
    np.testing.assert_array_equal(scales.b.numpy(), model.get_layer("scales").b.numpy()[keep_ids])
    np.testing.assert_array_equal(narrow.get_layer("dw").get_weights()[0],
                                  model.get_layer("dw").get_weights()[0][:, :, keep_ids])
