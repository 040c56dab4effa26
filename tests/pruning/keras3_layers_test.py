"""Keras 3 specifics beyond the shared equivalence cases: dtype policies and input preprocessing layers."""
import keras
import numpy as np

import pipeline


def preprocessing_cnn(dtype=None):
    keras.utils.set_random_seed(0)
    layers = keras.layers
    x = inputs = keras.Input((12, 12, 3))
    norm = layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[900.0, 800.0, 700.0])
    x = norm(layers.Rescaling(1.0, offset=0.0)(x))
    x = layers.Conv2D(16, 3, padding="same", dtype=dtype, name="c1")(x)
    x = layers.BatchNormalization(dtype=dtype, name="bn1")(x)
    x = layers.Activation("relu", dtype=dtype)(x)
    x = layers.Conv2D(24, 3, padding="same", dtype=dtype, name="c2")(x)
    x = layers.GlobalAveragePooling2D(dtype=dtype)(x)
    return keras.Model(inputs, layers.Dense(4, dtype="float32", name="head")(x))


def test_normalization_and_rescaling_at_the_input_prune_and_replay_exactly():
    model = preprocessing_cnn()
    x = np.random.default_rng(0).uniform(0, 255, (3, 12, 12, 3)).astype("float32")
    same = pipeline.prune(model, 0.0).model
    np.testing.assert_array_equal(np.asarray(same(x)), np.asarray(model(x)))
    pruned = pipeline.prune(model, 0.5, round_to=1)
    assert pruned.model.get_layer("c1").filters < 16
    again = pipeline.apply_plan(model, pipeline.PrunePlan.from_json(pruned.plan.to_json()))
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(pruned.model(x)), rtol=1e-6)


def test_a_mixed_precision_policy_survives_the_rebuild():
    model = preprocessing_cnn(dtype="mixed_float16")
    pruned = pipeline.prune(model, 0.5).model
    for name in ("c1", "bn1", "c2", "head"):
        assert pruned.get_layer(name).dtype_policy.name == model.get_layer(name).dtype_policy.name
    assert pruned.get_layer("c1").compute_dtype == "float16"
    assert pruned.get_layer("c1").kernel.dtype == "float32"  # variables stay float32
    x = np.random.default_rng(1).uniform(0, 255, (2, 12, 12, 3)).astype("float32")
    out = pruned(x)
    assert out.dtype == "float32" and out.shape == (2, 4)
