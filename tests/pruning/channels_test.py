"""pipeline.pruning.channels: which channels are removed together (groups, classes, blocks).

Output-preservation of the analysis on every supported pattern is
tests/pruning/equivalence_test.py; here the structure it finds.
"""
import numpy as np
import pytest
import tf_keras

import pipeline
from pipeline.pruning import channels

L = tf_keras.layers


def tiny():
    x = inputs = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(16, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tf_keras.Model(inputs, L.Dense(3, name="head")(x), name="tiny")


def residual(width=6):
    x = inputs = tf_keras.Input((8, 8, 4))
    stem = L.Conv2D(5, 1, name="stem")(x)
    a = L.Conv2D(width, 3, padding="same", name="a")(stem)
    b = L.Conv2D(width, 1, name="b")(stem)
    x = L.Add(name="add")([a, b])
    x = L.Concatenate(name="cat")([x, stem])
    x = L.Conv2D(4, 1, name="mix")(x)
    return tf_keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))


def test_each_producer_is_a_group_and_the_output_layer_is_blocked():
    analysis = pipeline.analyse(tiny())
    assert [(g.name, g.producers, g.size) for g in analysis.groups] == [
        ("c1", ("c1",), 8), ("c2", ("c2",), 16)]
    assert [l.node.name for l in analysis.layers] == ["c1", "bn", "relu", "c2", "gap", "head"]
    head = next(l for l in analysis.layers if l.node.name == "head")
    grouped = np.concatenate([g.classes for g in analysis.groups])
    assert not np.isin(head.outs[0], grouped).any()  # the model's output stays whole
    bn = next(l for l in analysis.layers if l.node.name == "bn")
    np.testing.assert_array_equal(bn.ins[0], analysis.group("c1").classes)
    np.testing.assert_array_equal(bn.outs[0], bn.ins[0])  # per-channel: passed through


def test_convs_feeding_an_add_form_one_group():
    analysis = pipeline.analyse(residual(width=6))
    assert [(g.name, g.producers, g.size) for g in analysis.groups] == [
        ("stem", ("stem",), 5), ("a", ("a", "b"), 6), ("mix", ("mix",), 4)]
    np.testing.assert_array_equal(analysis.producer_outs["a"], analysis.producer_outs["b"])


def test_concatenate_lays_its_inputs_side_by_side():
    analysis = pipeline.analyse(residual())
    mix = next(l for l in analysis.layers if l.node.name == "mix")
    np.testing.assert_array_equal(mix.ins[0], np.concatenate(
        [analysis.producer_outs["a"], analysis.producer_outs["stem"]]))
    kernel_in = next(a for a in mix.axes if a.weight == "kernel" and a.role == "in")
    np.testing.assert_array_equal(kernel_in.ids, mix.ins[0])


def test_flatten_tiles_a_channel_over_the_dense_rows():
    x = inputs = tf_keras.Input((2, 2, 1))
    x = L.Conv2D(3, 1, name="c")(x)
    x = L.Flatten(name="flat")(x)
    model = tf_keras.Model(inputs, L.Dense(2, name="head")(x))
    analysis = pipeline.analyse(model)
    c = analysis.group("c").classes
    head = next(l for l in analysis.layers if l.node.name == "head")
    np.testing.assert_array_equal(head.ins[0], np.tile(c, 4))  # Dense row r is channel r % 3


def test_a_grouped_conv_ties_its_groups():
    x = inputs = tf_keras.Input((4, 4, 3))
    x = L.Conv2D(8, 1, name="a")(x)
    x = L.Conv2D(6, 3, padding="same", groups=2, name="g")(x)
    model = tf_keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))
    analysis = pipeline.analyse(model)
    # 8 inputs in 2 groups: local input k is one channel in both halves; so is output k.
    assert [(g.name, g.size) for g in analysis.groups] == [("a", 4), ("g", 3)]
    outs = analysis.producer_outs["a"]
    np.testing.assert_array_equal(outs[:4], outs[4:])


def test_a_depthwise_conv_joins_its_producers_group():
    x = inputs = tf_keras.Input((6, 6, 3))
    x = L.Conv2D(8, 1, name="expand")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(4, 1, name="project")(x)
    model = tf_keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))
    analysis = pipeline.analyse(model)
    assert [g.name for g in analysis.groups] == ["expand", "project"]
    dw = next(l for l in analysis.layers if l.node.name == "dw")
    np.testing.assert_array_equal(dw.outs[0], analysis.group("expand").classes)


def test_ignored_layers_keep_their_channels():
    analysis = pipeline.analyse(tiny(), ignore=["c1"])
    assert [g.name for g in analysis.groups] == ["c2"]
    assert [g.name for g in pipeline.analyse(tiny(), ignore="c*").groups] == []


def test_keep_mask_drops_exactly_the_channels_left_out():
    analysis = pipeline.analyse(tiny())
    keep = analysis.keep_mask({"c1": np.array([0, 2])})
    c1 = analysis.group("c1").classes
    assert keep.shape == (analysis.n_ids,)
    np.testing.assert_array_equal(keep[c1], [True, False, True] + [False] * 5)
    assert keep[np.setdiff1d(np.arange(analysis.n_ids), c1)].all()
    assert analysis.keep_mask({}).all()


def test_unknown_group_name_raises_key_error():
    with pytest.raises(KeyError, match="nope"):
        pipeline.analyse(tiny()).group("nope")


def test_components_label_each_node_with_its_smallest_member():
    labels = channels.components(6, np.array([0, 3, 5]), np.array([3, 4, 2]))
    np.testing.assert_array_equal(labels, [0, 1, 2, 0, 0, 2])
    np.testing.assert_array_equal(channels.components(3, np.zeros(0, int), np.zeros(0, int)),
                                  [0, 1, 2])


def test_tracer_refuses_to_tie_different_widths():
    tracer = channels.Tracer()
    with pytest.raises(ValueError, match="cannot tie 2 channels to 3"):
        tracer.unify(tracer.fresh(2, "a"), tracer.fresh(3, "b"))
