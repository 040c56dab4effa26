"""Errors name the layer, the value and the fix; library messages name Python arguments."""
import ast
import pathlib
import re

import numpy as np
import pytest
import tf_keras

import pipeline
from pipeline.pruning.handlers import passthrough

L = tf_keras.layers


class Mystery(L.Layer):
    def call(self, x):
        return x


class Doubler(L.Layer):
    def call(self, x):
        return 2.0 * x


def test_unknown_layer_names_layer_class_and_both_fixes():
    x = inp = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="c0")(x)
    x = L.Conv2D(4, 3, name="c")(x)
    x = Mystery(name="mystery")(x)
    model = tf_keras.Model(inp, L.Conv2D(2, 1, name="head")(x))
    with pytest.raises(pipeline.UnsupportedLayerError) as err:
        pipeline.prune(model, 0.5)
    text = str(err.value)
    assert "'mystery'" in text and "Mystery" in text
    assert "register_handler" in text and "ignore=['mystery']" in text
    # The second fix works: the ignored layer is kept whole, the rest is still prunable.
    result = pipeline.prune(model, 0.5, target="filters", ignore=["mystery"])
    assert result.model.get_layer("c").filters == 4  # feeds the opaque layer: kept
    assert result.model.get_layer("c0").filters == 4


def test_registering_a_handler_makes_a_layer_prunable():
    x = inp = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="c")(x)
    x = Doubler(name="double")(x)
    model = tf_keras.Model(inp, L.Conv2D(2, 1, name="head")(x))
    pipeline.register_handler(Doubler, passthrough())
    result = pipeline.prune(model, 0.5, target="filters")
    assert result.model.get_layer("c").filters == 4
    with pytest.raises(pipeline.RegistryError, match="already has a handler"):
        pipeline.register_handler(Doubler, passthrough())


def test_shared_layer_is_refused_by_name():
    shared = L.Conv2D(3, 3, padding="same", name="shared")
    x = inp = tf_keras.Input((8, 8, 3))
    x = shared(shared(x))
    model = tf_keras.Model(inp, L.Conv2D(2, 1, name="head")(x))
    with pytest.raises(pipeline.UnsupportedModelError, match="'shared' .*called 2 times"):
        pipeline.prune(model, 0.5)


def test_ignored_shared_layer_is_kept_whole_inputs_included():
    shared = L.Conv2D(6, 3, padding="same", name="shared")
    x = inp = tf_keras.Input((8, 8, 3))
    a = L.Conv2D(6, 3, padding="same", name="a")(inp)
    b = L.Conv2D(8, 3, padding="same", name="b")(inp)
    x = L.Concatenate(name="cat")([shared(a), shared(L.Conv2D(6, 1, name="b2")(b))])
    model = tf_keras.Model(inp, L.Conv2D(2, 1, name="head")(x))
    analysis = pipeline.analyse(model, ignore=["shared"])
    assert [g.name for g in analysis.groups] == ["b"]  # a and b2 feed the shared kernel
    result = pipeline.prune(model, 0.5, target="filters", ignore=["shared"])
    assert result.model.get_layer("b").filters == 4
    x = np.random.rand(1, 8, 8, 3).astype("float32")
    assert result.model(x).shape == model(x).shape


def test_subclassed_model_is_refused():
    class Net(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(pipeline.UnsupportedModelError, match="subclassed .*functional API"):
        pipeline.prune(net, 0.5)


def test_unbuilt_sequential_is_refused():
    model = tf_keras.Sequential([L.Conv2D(4, 3), L.Conv2D(2, 1)])
    with pytest.raises(pipeline.UnsupportedModelError, match="not built"):
        pipeline.prune(model, 0.5)


def test_a_foreign_object_is_refused():
    with pytest.raises(pipeline.UnsupportedModelError,
                       match=r"expected a Keras model \(tf_keras or Keras 3\), got builtins.object"):
        pipeline.prune(object(), 0.5)


def test_channels_first_conv_is_refused():
    x = inp = tf_keras.Input((3, 8, 8))
    x = L.Conv2D(4, 3, data_format="channels_first", name="cf")(x)
    model = tf_keras.Model(inp, L.Flatten()(x))
    with pytest.raises(pipeline.UnsupportedLayerError, match="channels_first"):
        pipeline.prune(model, 0.5)


def test_model_inputs_and_outputs_are_never_pruned():
    x = inp = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="c")(x)
    out = L.Conv2D(6, 1, name="out_conv")(x)
    model = tf_keras.Model(inp, out)
    analysis = pipeline.analyse(model)
    assert [g.name for g in analysis.groups] == ["c"]
    result = pipeline.prune(model, 0.5, target="filters")
    assert result.model.output_shape == model.output_shape
    assert result.model.input_shape == model.input_shape


def test_errors_carry_the_python_argument_they_name():
    from pipeline.data.loaders import DataError
    error = DataError("data_dir='' is empty; pass data_dir=<folder>", argument="data_dir")
    assert isinstance(error, pipeline.PruningError) and isinstance(error, ValueError)
    assert error.argument == "data_dir" and str(error).startswith("data_dir=''")
    assert pipeline.TargetError("unreachable").argument is None


def _docstrings(tree):
    """The docstring nodes of a module and of its classes and functions."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(
                    node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str):
                yield node.body[0].value


def test_library_messages_name_no_config_key():
    """Only the run layer (pipeline/run, main.py) may spell a config key in a string."""
    from configs import default
    sections = "|".join(sorted(default.get_config().keys()))
    config_key = re.compile(rf"config\.(?:{sections})\b")
    root = pathlib.Path(pipeline.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("run/") or relative == "main.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(node) for node in _docstrings(tree)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings and config_key.search(node.value)):
                found.append(f"{relative}:{node.lineno}: {node.value[:60]!r}")
    assert not found, "library strings naming a config key (name the Python argument):\n" + (
        "\n".join(found))
