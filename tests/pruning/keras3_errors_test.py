"""Keras 3 models the pruner cannot take: one error each, naming the model or layer and the fix."""
import keras
import numpy as np
import pytest
import tf_keras

import pipeline


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def test_a_subclassed_keras3_model_says_rewrite_it_functionally():
    model = Subclassed()
    model(np.zeros((1, 8), "float32"))
    with pytest.raises(pipeline.UnsupportedModelError,
                       match=r"'sub' is a subclassed Keras 3 model \(Subclassed\).*keras.Model\("):
        pipeline.prune(model, 0.5)


def test_an_unbuilt_keras3_sequential_says_how_to_build_it():
    with pytest.raises(pipeline.UnsupportedModelError, match=r"not built.*keras.Input"):
        pipeline.prune(keras.Sequential([keras.layers.Dense(3)], name="lazy"), 0.5)


def test_a_custom_keras3_layer_without_handler_names_it_and_both_fixes():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8, name="first")(inputs)
    x = Doubler(name="mine")(keras.layers.Dense(4)(x))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(pipeline.UnsupportedLayerError,
                       match=r"'mine' has class .*Doubler.*register_handler.*ignore=\['mine'\]"):
        pipeline.prune(model, 0.5)
    pruned = pipeline.prune(model, 0.5, target="filters", ignore=["mine"]).model
    assert isinstance(pruned, keras.Model)  # kept whole (inputs too), the rest still prunes
    assert pruned.get_layer("first").units == 4


def test_a_keras3_submodel_inside_a_tf_keras_model_is_refused_naming_both():
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)], name="k3")
    inputs = tf_keras.Input((8,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(4)(inner(inputs)), name="outer")
    with pytest.raises(pipeline.UnsupportedModelError,
                       match=r"holds a Keras 3 Variable inside the tf_keras .* model 'outer'.*"
                             r"one Keras"):
        pipeline.prune(model, 0.5)


def test_a_non_keras_object_is_refused():
    with pytest.raises(pipeline.UnsupportedModelError, match="expected a Keras model"):
        pipeline.prune(object(), 0.5)
