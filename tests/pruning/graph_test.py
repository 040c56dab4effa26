"""pipeline.pruning.graph: a tf_keras model read into plain nodes, edges and shapes.

The refusals (subclassed, unbuilt, shared, foreign models) are checked
through ``pipeline.prune`` in tests/errors_test.py; here the graph itself.
"""
import pytest
import tf_keras

import pipeline
from pipeline.pruning import graph

L = tf_keras.layers


def tiny():
    """Input(8,8,3) -> Conv2D(8) -> BN -> ReLU -> Conv2D(16) -> GAP -> Dense(3)."""
    x = inputs = tf_keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", name="c1")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(16, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tf_keras.Model(inputs, L.Dense(3, name="head")(x), name="tiny")


def residual():
    x = inputs = tf_keras.Input((8, 8, 4))
    stem = L.Conv2D(6, 1, name="stem")(x)
    a = L.Conv2D(6, 3, padding="same", name="a")(stem)
    b = L.Conv2D(6, 1, name="b")(stem)
    x = L.Add(name="add")([a, b])
    x = L.Concatenate(name="cat")([x, stem])
    return tf_keras.Model(inputs, L.GlobalAveragePooling2D(name="gap")(x), name="res")


def test_a_chain_reads_in_order_with_its_edges_and_shapes():
    g = graph.read_graph(tiny())
    assert g.name == "tiny"
    assert [n.name for n in g.nodes] == ["c1", "bn", "relu", "c2", "gap", "head"]
    assert [n.class_name for n in g.nodes] == ["Conv2D", "BatchNormalization", "ReLU", "Conv2D",
                                               "GlobalAveragePooling2D", "Dense"]
    assert g.nodes[0].inputs == g.inputs and len(g.inputs) == 1
    for before, after in zip(g.nodes, g.nodes[1:]):
        assert after.inputs == before.outputs
    assert g.outputs == g.nodes[-1].outputs
    assert [(n.in_shapes, n.out_shapes) for n in (g.node("c1"), g.node("c2"), g.node("head"))] == [
        (((8, 8, 3),), ((8, 8, 8),)), (((8, 8, 8),), ((6, 6, 16),)), (((16,),), ((3,),))]
    assert g.shapes[g.inputs[0]] == (8, 8, 3)
    assert all(n.path == (n.name,) for n in g.nodes) and g.bindings == ()


def test_branches_are_in_topological_order():
    g = graph.read_graph(residual())
    names = [n.name for n in g.nodes]
    assert sorted(names) == ["a", "add", "b", "cat", "gap", "stem"]
    produced = set(g.inputs)
    for node in g.nodes:
        assert set(node.inputs) <= produced, f"{node.name} read before it was made"
        produced.update(node.outputs)
    stem, a, b = g.node("stem"), g.node("a"), g.node("b")
    assert g.node("add").inputs == a.outputs + b.outputs
    assert g.node("cat").inputs == g.node("add").outputs + stem.outputs
    assert a.inputs == b.inputs == stem.outputs
    assert g.node("cat").out_shapes == ((8, 8, 12),)


def test_unknown_node_name_raises_key_error():
    with pytest.raises(KeyError, match="nope"):
        graph.read_graph(tiny()).node("nope")


def test_a_sequential_model_reads_like_a_functional_one():
    model = tf_keras.Sequential([tf_keras.Input((6, 6, 1)), L.Conv2D(4, 3, name="c"),
                                 L.Flatten(name="flat"), L.Dense(2, name="d")], name="seq")
    g = graph.read_graph(model)
    assert [n.name for n in g.nodes] == ["c", "flat", "d"]
    assert g.node("flat").out_shapes == ((64,),)


def test_nested_models_are_inlined_with_paths_and_bindings():
    block = tf_keras.Sequential([L.Conv2D(5, 3, padding="same", name="inner"),
                                 L.ReLU(name="inner_relu")], name="block")
    sub_in = tf_keras.Input((8, 8, 5), name="sub_in")
    sub = tf_keras.Model(sub_in, L.Conv2D(7, 1, name="conv")(sub_in), name="submodel")
    x = inputs = tf_keras.Input((8, 8, 3))
    x = sub(block(L.Conv2D(3, 1, name="pre")(x)))
    model = tf_keras.Model(inputs, L.GlobalAveragePooling2D(name="gap")(x))
    g = graph.read_graph(model)
    assert [n.name for n in g.nodes] == ["pre", "block/inner", "block/inner_relu",
                                         "submodel/conv", "gap"]
    inner = g.node("block/inner")
    assert inner.path == ("block", "inner") and inner.inputs == g.node("pre").outputs
    assert g.node("submodel/conv").inputs == g.node("block/inner_relu").outputs
    assert (("submodel", "sub_in"), g.node("block/inner_relu").outputs[0]) in g.bindings
    paths = [p for p, _ in graph.layer_paths(model)]
    assert [p for p in paths if len(p) > 1] == [("block", "inner"), ("block", "inner_relu"),
                                                ("submodel", "sub_in"), ("submodel", "conv")]
    assert graph.node_name(("block", "inner")) == "block/inner"


def test_allowed_shared_layers_get_numbered_calls():
    shared = L.Conv2D(3, 3, padding="same", name="shared")
    x = inputs = tf_keras.Input((8, 8, 3))
    model = tf_keras.Model(inputs, shared(shared(x)))
    with pytest.raises(pipeline.UnsupportedModelError, match="shared"):
        graph.read_graph(model)
    g = graph.read_graph(model, allow_shared={"shared"})
    assert [n.name for n in g.nodes] == ["shared", "shared#1"]
    assert g.nodes[1].inputs == g.nodes[0].outputs and g.nodes[1].path == ("shared",)


def test_tf_op_constants_are_recorded():
    x = inputs = tf_keras.Input((4, 4, 2))
    y = L.Conv2D(2, 1, name="c")(x) * 0.5
    g = graph.read_graph(tf_keras.Model(inputs, y))
    op = g.nodes[-1]
    assert op.class_name == "TFOpLambda" and 0.5 in op.constants


def test_output_layer_names():
    assert graph.output_layer_names(tiny()) == frozenset({"head"})
    x = inputs = tf_keras.Input((4,))
    two = tf_keras.Model(inputs, [L.Dense(2, name="a")(x), L.Dense(3, name="b")(x)])
    assert graph.output_layer_names(two) == frozenset({"a", "b"})
