"""The Keras families: which one owns a model, the classes each resolves, and their internals."""
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tf_keras

from kerases import KERAS_IDS, KERASES
from pipeline.errors import UnsupportedModelError
from pipeline.pruning import families, graph, handlers
from pipeline.pruning.handlers import base, ops

PIPELINE = pathlib.Path(graph.__file__).resolve().parents[1]
PRIVATE = re.compile(r"tf_keras\.src|keras\.src|_keras_history|_inbound_nodes|_nodes_by_depth")


def test_only_the_families_touch_keras_internals():
    touching = sorted(str(p.relative_to(PIPELINE)) for p in PIPELINE.rglob("*.py")
                      if PRIVATE.search(p.read_text()))
    assert touching == ["pruning/families/keras3.py", "pruning/families/legacy.py"]


@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
def test_output_layer_names(K):
    inputs = K.Input((8,))
    hidden = K.layers.Dense(4, name="hidden")(inputs)
    heads = [K.layers.Dense(2, name="a")(hidden), K.layers.Dense(3, name="b")(hidden)]
    assert graph.output_layer_names(K.Model(inputs, heads)) == frozenset({"a", "b"})
    sequential = K.Sequential([K.Input((8,)), K.layers.Dense(2, name="out")])
    assert graph.output_layer_names(sequential) == frozenset({"out"})


@pytest.mark.parametrize("K, name", [(tf_keras, "tf_keras"), (keras, "keras 3")],
                         ids=KERAS_IDS)
def test_family_of_a_model_and_of_its_layers(K, name):
    model = K.Sequential([K.Input((4,)), K.layers.Dense(2)])
    assert families.family_of(model).name == name
    assert families.family_of(model.layers[0]).name == name
    assert graph.read_graph(model).family.name == name


def test_a_non_keras_object_is_refused_naming_its_type():
    with pytest.raises(UnsupportedModelError, match="numpy.ndarray"):
        families.family_of(np.zeros(3))


def test_every_declared_name_resolves_in_some_family():
    legacy, k3 = families.load("tf_keras"), families.load("keras")
    missing = [n for n in base.declared_names()
               if legacy.resolve(n) is None and k3.resolve(n) is None]
    assert not missing


def test_one_declaration_covers_both_kerases():
    for name in ("Conv2D", "DepthwiseConv2D", "BatchNormalization", "Add", "Concatenate",
                 "Flatten", "LayerScale", "CustomScaleLayer"):
        a = handlers.find_handler(families.load("tf_keras").resolve(name))
        b = handlers.find_handler(families.load("keras").resolve(name))
        assert a is not None and a is b, name


def test_private_classes_resolve_to_the_classes_the_applications_use():
    legacy = families.load("tf_keras")
    assert legacy.resolve("TFOpLambda").__name__ == "TFOpLambda"
    assert legacy.resolve("LayerScale").__module__.startswith("tf_keras.")
    assert families.load("keras").resolve("LayerScale").__module__.startswith("keras.")
    assert families.load("keras").resolve("TFOpLambda") is None


def test_every_keras3_operation_has_a_handler_and_elementwise_ones_follow_channels():
    from pipeline.pruning.families import keras3
    classes = keras3.operation_classes()
    assert len(classes) > 250  # 292 in Keras 3.12, 336 in 3.15
    assert all(handlers.find_handler(c) is not None for c in classes)
    k3 = families.load("keras")
    for name in ops.ELEMENTWISE_KERAS_OPS:
        assert isinstance(handlers.find_handler(k3.resolve(name)), ops.ElementwiseOpHandler), name
    # Channel-mixing ops stay whole.
    assert isinstance(handlers.find_handler(k3.resolve("op:ops.numpy.Matmul")),
                      handlers.channelwise.OpaqueHandler)


def test_import_pipeline_does_not_import_keras3():
    code = "import sys, pipeline; print('keras.src' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr[-2000:]
