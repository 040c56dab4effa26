"""Both Kerases a test can be parametrised over: tf_keras (Keras 2) and Keras 3.

A builder takes the Keras module ``K`` and uses only what both share
(``K.Input``, ``K.Model``, ``K.Sequential``, ``K.layers``, ``K.activations``),
so one builder makes the same architecture in either family.

Example:
  >>> @pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
  ... def test_something(K): model = K.Sequential([K.Input((4,)), K.layers.Dense(2)])
"""
import keras
import tf_keras

KERASES = (tf_keras, keras)
KERAS_IDS = ("tf_keras", "keras3")


def keras_id(K) -> str:
    return KERAS_IDS[KERASES.index(K)]
