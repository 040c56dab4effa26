"""pipeline.keras_api's model helpers, in both Kerases: the layer walk and the model copy."""
import numpy as np
import pytest

from kerases import KERAS_IDS, KERASES
from pipeline import keras_api


def _with_a_block(K):
    """A functional model holding a custom layer that keeps a Dense and a BatchNormalization,
    and a nested sub-model."""

    class Block(K.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = K.layers.Dense(4, name="block_dense")
            self.norm = K.layers.BatchNormalization(name="block_norm")

        def call(self, x, training=None):
            return x + self.norm(self.dense(x), training=training)

    inner_in = K.Input((4,))
    inner = K.Model(inner_in, K.layers.Dense(4, name="inner_dense")(inner_in), name="inner")
    inputs = K.Input((4,))
    return K.Model(inputs, inner(Block(name="block")(inputs)), name="outer")


@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
def test_layers_within_sees_the_layers_of_custom_layers_parents_first(K):
    model = _with_a_block(K)
    names = [layer.name for layer in keras_api.layers_within(model)]
    assert names[0] == "outer"
    for parent, child in (("block", "block_dense"), ("block", "block_norm"),
                          ("inner", "inner_dense")):
        assert names.index(parent) < names.index(child), names
    assert len(names) == len(set(names))  # each once


@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
def test_copy_model_is_a_new_model_with_the_same_or_the_given_weights(K):
    K.utils.set_random_seed(0)
    inputs = K.Input((3,))
    model = K.Model(inputs, K.layers.Dense(2, name="fc")(inputs))
    copy = keras_api.copy_model(model)
    assert copy is not model and keras_api.of(copy) is K
    x = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(copy(x)), np.asarray(model(x)))
    copy.get_layer("fc").set_weights([np.zeros((3, 2)), np.zeros(2)])
    assert np.any(np.asarray(model(x)) != 0)  # the source is not shared
    given = keras_api.copy_model(model, [np.ones((3, 2)), np.zeros(2)])
    np.testing.assert_allclose(np.asarray(given(x)), np.repeat(x.sum(1, keepdims=True), 2, 1),
                               rtol=1e-6)
