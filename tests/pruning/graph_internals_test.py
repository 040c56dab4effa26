"""graph.py is the one owner of tf_keras' private API; what it exposes for the rest."""
import pathlib
import re

import tf_keras

from pipeline.pruning import graph, handlers

PIPELINE = pathlib.Path(graph.__file__).resolve().parents[1]
PRIVATE = re.compile(r"tf_keras\.src|_keras_history|_inbound_nodes|_nodes_by_depth")


def test_only_graph_py_touches_keras_internals():
    touching = sorted(str(p.relative_to(PIPELINE)) for p in PIPELINE.rglob("*.py")
                      if PRIVATE.search(p.read_text()))
    assert touching == ["pruning/graph.py"]


def test_output_layer_names():
    inputs = tf_keras.Input((8,))
    hidden = tf_keras.layers.Dense(4, name="hidden")(inputs)
    heads = [tf_keras.layers.Dense(2, name="a")(hidden), tf_keras.layers.Dense(3, name="b")(hidden)]
    assert graph.output_layer_names(tf_keras.Model(inputs, heads)) == frozenset({"a", "b"})
    sequential = tf_keras.Sequential([tf_keras.Input((8,)), tf_keras.layers.Dense(2, name="out")])
    assert graph.output_layer_names(sequential) == frozenset({"out"})


def test_the_private_layer_classes_have_handlers():
    for cls in (graph.LAYER_SCALE, graph.CUSTOM_SCALE_LAYER, graph.TF_OP_LAMBDA,
                graph.SLICING_OP_LAMBDA):
        assert isinstance(cls, type) and issubclass(cls, tf_keras.layers.Layer)
        assert handlers.find_handler(cls) is not None, cls.__name__
    assert graph.LAYER_SCALE.__name__ == "LayerScale"
    assert graph.TF_OP_LAMBDA.__name__ == "TFOpLambda"
