"""pipeline.keras_api.clone_model: a copy in the model's own Keras with its layers' names."""
import numpy as np
import pytest

from kerases import KERAS_IDS, KERASES
from pipeline import keras_api


def two_inputs(K):
    a, b = K.Input((4,)), K.Input((3,), name="extra")
    x = K.layers.Concatenate(name="join")([a, b])
    return K.Model([a, b], K.layers.Dense(2, name="head")(x))


def dict_input(K):
    a = K.Input((4,))
    return K.Model({"pixels": a}, K.layers.Dense(2, name="head")(a))


def sequential(K):
    return K.Sequential([K.Input((4,)), K.layers.Dense(2, name="head")])


@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
@pytest.mark.parametrize("build", [two_inputs, dict_input, sequential])
def test_the_clone_keeps_every_layer_name_and_computes_the_same(K, build):
    model = build(K)
    copy = keras_api.clone_model(model)
    assert keras_api.of(copy) is K and copy is not model
    assert [l.name for l in copy.layers] == [l.name for l in model.layers]
    copy.set_weights(model.get_weights())
    rng = np.random.default_rng(0)
    inputs = [rng.random((2,) + tuple(t.shape[1:]), np.float32) for t in model.inputs]
    if build is dict_input:
        inputs = {"pixels": inputs[0]}
    elif len(inputs) == 1:
        inputs = inputs[0]
    np.testing.assert_array_equal(np.asarray(copy(inputs)), np.asarray(model(inputs)))


def test_an_unnamed_keras3_input_keeps_its_layer_name():
    """Keras 3.15's own clone_model renames it after its tensor ('keras_tensor')."""
    import keras
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert keras.models.clone_model(model).layers[0].name != model.layers[0].name  # the quirk
    assert keras_api.clone_model(model).layers[0].name == model.layers[0].name
