"""Equivalence: pruning dead channels changes nothing but the width.

For every supported layer class and coupling pattern, a model is built at
full width, a known set of channels is made dead (every scored weight slice of
their group zero: filters, biases, BN gamma and beta, consumers' input
slices), and pruning to exactly that many channels must remove exactly those,
give the same outputs, and have exactly the parameter count of the same
architecture built narrower.
"""
import functools

import numpy as np
import pytest

import pipeline
from pipeline.pruning.handlers import per_channel
from kerases import KERAS_IDS, KERASES


@functools.cache
def channel_scale(K):
    """A user's own per-channel layer in Keras ``K``, registered through the public API."""

    class ChannelScale(K.layers.Layer):
        def __init__(self, width, **kwargs):
            super().__init__(**kwargs)
            self.width = width

        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(self.width,), initializer="ones")

        def call(self, x):
            return x * self.scale

        def get_config(self):
            return {**super().get_config(), "width": self.width}

    pipeline.register_handler(ChannelScale, per_channel(("scale",), config_key="width"))
    return ChannelScale


def layers_of(tensor):
    """The ``layers`` namespace of the Keras that made ``tensor``."""
    return KERASES[0].layers if type(tensor).__module__.startswith("tf_keras") else KERASES[1].layers


def conv_bn(x, width, name, kernel=3, activation="relu", **kw):
    L = layers_of(x)
    x = L.Conv2D(width, kernel, padding="same", name=name, **kw)(x)
    x = L.BatchNormalization(name=name + "_bn")(x)
    return L.Activation(activation, name=name + "_act")(x)


def build_chain(K, w):
    L = K.layers
    x = inp = K.Input((12, 12, 3))
    x = conv_bn(x, w["c1"], "c1")
    x = L.Conv2D(w["c2"], 3, padding="same", activation="sigmoid", name="c2")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.Cropping2D(1, name="crop")(x)
    x = L.Conv2D(w["c3"], 3, padding="same", use_bias=False, name="c3")(x)
    x = L.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = L.UpSampling2D(name="up")(x)
    x = L.AveragePooling2D(2, name="avg")(x)
    x = L.Dropout(0.1, name="drop")(x)
    x = L.Rescaling(0.5, name="rescale")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(w["d1"], activation="tanh", name="d1")(x)
    return K.Model(inp, L.Dense(5, name="head")(x))


def build_residual(K, w):
    L = K.layers
    x = inp = K.Input((10, 10, 4))
    x = conv_bn(x, w["stem"], "stem")
    for i, merge in enumerate([L.Add, L.Subtract, L.Average, L.Maximum, L.Minimum]):
        y = conv_bn(x, w[f"b{i}a"], f"b{i}a")
        y = L.Conv2D(w["stem"], 1, name=f"b{i}b")(y)
        x = merge(name=f"merge{i}")([x, y])
    x = L.ReLU(6.0, name="relu6")(x)
    x = L.GlobalMaxPooling2D(name="gmp")(x)
    return K.Model(inp, L.Dense(3, name="head")(x))


def build_concat(K, w):
    L = K.layers
    x = inp = K.Input((9, 9, 3))
    a = conv_bn(x, w["a"], "a")
    b = conv_bn(x, w["b"], "b", kernel=1)
    c = L.Concatenate(name="cat")([a, b])
    c = conv_bn(c, w["c"], "c")
    d = L.Concatenate(name="cat2")([c, a])  # a is used twice, at two offsets
    x = L.GlobalAveragePooling2D(name="gap")(d)
    return K.Model(inp, L.Dense(4, name="head")(x))


def build_depthwise(K, w):
    L = K.layers
    x = inp = K.Input((10, 10, 3))
    x = conv_bn(x, w["c1"], "c1")
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw2")(x)
    x = L.SeparableConv2D(w["sep"], 3, padding="same", depth_multiplier=2, name="sep")(x)
    x = L.ReLU(name="sep_relu")(x)
    x = L.SeparableConv2D(w["sep2"], 3, padding="same", name="sep2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inp, L.Dense(3, name="head")(x))


def build_grouped(K, w):
    L = K.layers
    x = inp = K.Input((8, 8, 4))
    x = conv_bn(x, w["a"], "a", kernel=1)
    x = L.Conv2D(w["g"], 3, padding="same", groups=2, name="g")(x)
    x = L.BatchNormalization(name="g_bn")(x)
    x = L.Conv2D(w["g"], 3, padding="same", groups=w["g"], name="dwg")(x)
    x = L.Conv2D(w["p"], 1, name="p")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inp, L.Dense(3, name="head")(x))


def build_se(K, w):
    L = K.layers
    x = inp = K.Input((8, 8, 3))
    x = conv_bn(x, w["c"], "c", activation="swish")
    s = L.GlobalAveragePooling2D(name="se_gap")(x)
    s = L.Reshape((1, 1, w["c"]), name="se_reshape")(s)
    s = L.Conv2D(w["se_r"], 1, activation="relu", name="se_r")(s)
    s = L.Conv2D(w["c"], 1, activation="sigmoid", name="se_e")(s)
    x = L.Multiply(name="se_mul")([x, s])
    g = L.Conv2D(1, 1, activation="sigmoid", name="spatial_gate")(x)  # (…,1): broadcast, not tied
    x = L.Multiply(name="gate_mul")([x, g])
    x = L.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    x = L.Flatten(name="flat")(x)
    return K.Model(inp, L.Dense(3, name="head")(x))


def build_flatten(K, w):
    L = K.layers
    x = inp = K.Input((6, 6, 2))
    x = conv_bn(x, w["c"], "c")
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(w["fc"], activation="relu", name="fc")(x)
    x = L.Reshape((1, w["fc"]), name="to_seq")(x)
    x = L.Reshape((w["fc"],), name="back")(x)
    return K.Model(inp, L.Dense(4, name="head")(x))


def build_dense_nd(K, w):
    L = K.layers
    x = inp = K.Input((5, 7, 3))
    x = L.Dense(w["d1"], activation="gelu", name="d1")(x)
    x = L.LayerNormalization(axis=1, name="ln_spatial")(x)  # normalises over H: channels free
    x = L.Dense(w["d2"], name="d2")(x)
    x = L.Reshape((35, w["d2"]), name="seq")(x)
    x = L.Dense(w["d3"], activation="relu", name="d3")(x)
    x = L.Conv1D(w["c1d"], 3, padding="same", name="c1d")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return K.Model(inp, L.Dense(2, name="head")(x))


def build_transpose(K, w):
    L = K.layers
    x = inp = K.Input((6, 6, 3))
    x = conv_bn(x, w["c"], "c")
    x = L.Conv2DTranspose(w["t"], 3, strides=2, padding="same", name="t")(x)
    x = channel_scale(K)(w["t"], name="scale")(x)
    x = L.Conv2D(w["c2"], 3, strides=2, padding="same", activation="elu", name="c2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inp, L.Dense(3, name="head")(x))


def build_nested(K, w):
    L = K.layers
    block = K.Sequential([
        L.Conv2D(w["block/inner"], 3, padding="same", name="inner"),
        L.BatchNormalization(name="inner_bn"),
        L.ReLU(name="inner_relu"),
    ], name="block")
    sub_in = K.Input((8, 8, w["block/inner"]))
    sub_out = L.Conv2D(w["submodel/sub"], 1, activation="relu", name="sub")(sub_in)
    sub = K.Model(sub_in, sub_out, name="submodel")
    x = inp = K.Input((8, 8, 3))
    x = sub(block(x))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inp, L.Dense(3, name="head")(x))


def build_tfops(K, w):
    L = K.layers
    x = inp = K.Input((8, 8, 3))
    x = L.Conv2D(w["c"], 3, padding="same", name="c")(x)
    x = x * K.activations.relu(x + 3.0, max_value=6.0) * (1.0 / 6.0)  # hard-swish
    y = L.Conv2D(w["c"], 1, name="c_skip")(x)
    x = x + y
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inp, L.Dense(3, name="head")(x))


def build_sequential(K, w):
    L = K.layers
    return K.Sequential([
        K.Input((10, 10, 1)),
        L.Conv2D(w["conv_a"], 3, activation="relu", name="conv_a"),
        L.BatchNormalization(name="bn_a"),
        L.Conv2D(w["conv_b"], 3, activation="relu", name="conv_b"),
        L.Flatten(name="flat"),
        L.Dense(w["fc"], activation="relu", name="fc"),
        L.Dense(10, activation="softmax", name="out"),
    ], name="seq")


def build_3d(K, w):
    L = K.layers
    x = inp = K.Input((4, 6, 6, 2))
    x = L.Conv3D(w["c3d"], 3, padding="same", name="c3d")(x)
    x = L.BatchNormalization(name="c3d_bn")(x)
    x = L.Conv3DTranspose(w["t3d"], 2, name="t3d")(x)
    x = L.GlobalAveragePooling3D(name="gap")(x)
    return K.Model(inp, L.Dense(2, name="head")(x))


# name -> (builder, full widths, positions per removable channel when not 1)
CASES = {
    "chain": (build_chain, {"c1": 8, "c2": 10, "c3": 12, "d1": 9}, {}),
    "residual": (build_residual, {"stem": 12, "b0a": 6, "b1a": 6, "b2a": 5, "b3a": 7,
                                  "b4a": 4}, {}),
    "concat": (build_concat, {"a": 6, "b": 5, "c": 7}, {}),
    "depthwise": (build_depthwise, {"c1": 8, "sep": 10, "sep2": 6}, {}),
    "grouped": (build_grouped, {"a": 8, "g": 8, "p": 6}, {"a": 2, "g": 2}),
    "se": (build_se, {"c": 12, "se_r": 4, "spatial_gate": 1}, {}),
    "flatten": (build_flatten, {"c": 6, "fc": 10}, {}),
    "dense_nd": (build_dense_nd, {"d1": 6, "d2": 8, "d3": 7, "c1d": 5}, {}),
    "transpose": (build_transpose, {"c": 6, "t": 8, "c2": 5}, {}),
    "nested": (build_nested, {"block/inner": 6, "submodel/sub": 7}, {}),
    "tfops": (build_tfops, {"c": 8}, {}),
    "sequential": (build_sequential, {"conv_a": 6, "conv_b": 8, "fc": 12}, {}),
    "conv3d": (build_3d, {"c3d": 6, "t3d": 4}, {}),
}


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        shape = tuple(w.shape)
        if "variance" in w.name:
            values.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            values.append(rng.normal(0, 0.5, shape).astype("float32"))
    model.set_weights(values)


def kill(model, analysis, dead_ids):
    """Zeroes every scored slice of the dead channels, in every layer of their groups."""
    dead = np.zeros(analysis.n_ids, bool)
    dead[dead_ids] = True
    for layer in analysis.layers:
        if not layer.node.weights:
            continue  # a Keras 3 operation such as x + y
        keras_layer = layer.node.layer
        names = [w.name.split("/")[-1].split(":")[0] for w in keras_layer.weights]
        values = keras_layer.get_weights()
        for axis in layer.axes:
            if axis.scored and dead[axis.ids].any():
                i = names.index(axis.weight)
                moved = np.moveaxis(values[i], axis.axis, 0)
                moved[dead[axis.ids]] = 0.0
        keras_layer.set_weights(values)


def choose_dead(analysis, scope, rng):
    """Group name -> local indices of the channels to kill."""
    chosen = {}
    for g in analysis.groups:
        if g.size == 1:
            n = 0  # min_filters keeps the only channel
        else:
            n = g.size // 2 if scope == "layer" else int(rng.integers(1, g.size))
        chosen[g.name] = np.sort(rng.choice(g.size, n, replace=False))
    return chosen


def run_case(K, case, scope, criterion, seed=1):
    builder, full, mult = CASES[case]
    model = builder(K, full)
    randomize(model, seed)
    analysis = pipeline.analyse(model)
    assert {g.name for g in analysis.groups} == set(full)
    rng = np.random.default_rng(seed)
    dead = choose_dead(analysis, scope, rng)
    kill(model, analysis, np.concatenate(
        [analysis.group(n).classes[i] for n, i in dead.items()]))
    total = sum(g.size for g in analysis.groups)
    ratio = sum(len(i) for i in dead.values()) / total
    x = rng.normal(size=(3,) + tuple(model.input_shape[1:])).astype("float32")
    data = [(x, rng.integers(0, model.output_shape[-1], 3))]
    # round_to=1: exactly the channels ranked lowest go (the default "auto" rounds widths).
    result = pipeline.prune(model, ratio, target="filters", scope=scope, criterion=criterion,
                            round_to=1, data=data)
    for name, idx in dead.items():
        kept = result.plan.kept()[name]
        expected = np.setdiff1d(np.arange(analysis.group(name).size), idx)
        np.testing.assert_array_equal(kept, expected, err_msg=f"group {name}")
    np.testing.assert_allclose(result.model(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
    narrow = {k: v - mult.get(k, 1) * len(dead[k]) for k, v in full.items()}
    assert type(result.model).__module__.split(".")[0] == K.__name__
    assert result.model.count_params() == builder(K, narrow).count_params()
    return model, result, x


@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_dead_channels_pruned_exactly_l1(case, scope, K):
    run_case(K, case, scope, "l1")


@pytest.mark.parametrize("case", ["chain", "residual", "se", "grouped"])
@pytest.mark.parametrize("criterion", ["l2", "bn_gamma", "fpgm", "taylor"])
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
def test_dead_channels_rank_lowest_under_magnitude_criteria(case, criterion, scope, K):
    run_case(K, case, scope, criterion)


@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_replays_from_json(case, K):
    model, result, x = run_case(K, case, "global", "l1", seed=2)
    plan = pipeline.PrunePlan.from_json(result.plan.to_json())
    replayed = pipeline.apply_plan(model, plan)
    np.testing.assert_allclose(replayed(x).numpy(), result.model(x).numpy(), rtol=1e-6,
                               atol=1e-6)
    assert [l.name for l in replayed.layers] == [l.name for l in result.model.layers]
