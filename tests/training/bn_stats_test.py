"""pipeline.training.bn_stats: moving statistics re-estimated from data, nothing else moved."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import pipeline
from pipeline.training import bn_stats

L = tf_keras.layers
SHAPE = (6, 6, 3)


def data(n=256, mean=5.0, std=2.0):
    rng = np.random.default_rng(0)
    return (mean + std * rng.normal(size=(n, *SHAPE))).astype(np.float32)


def with_bn():
    """Conv -> BN -> ReLU -> GAP -> Dense -> BN (1-D) -> Dense, moving stats at 0 and 1."""
    tf_keras.utils.set_random_seed(0)
    x = inputs = tf_keras.Input(SHAPE)
    x = L.BatchNormalization(name="bn_in")(x)
    x = L.Conv2D(4, 3, name="conv")(x)
    x = L.ReLU()(L.BatchNormalization(name="bn_conv")(x))
    x = L.Dense(5, name="fc")(L.GlobalAveragePooling2D()(x))
    x = L.BatchNormalization(name="bn_fc")(x)
    return tf_keras.Model(inputs, L.Dense(2, name="head")(x))


def batches(x, size=64, labels=True):
    if labels:
        return tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x), np.int64))).batch(size)
    return tf.data.Dataset.from_tensor_slices(x).batch(size)


def moments(values):
    axes = tuple(range(values.ndim - 1))
    return values.mean(axes), values.var(axes)


def test_the_input_layer_gets_the_datas_mean_and_variance():
    model, x = with_bn(), data()
    bn = model.get_layer("bn_in")
    assert np.allclose(bn.moving_mean.numpy(), 0) and np.allclose(bn.moving_variance, 1)
    done = bn_stats.reestimate(model, batches(x), batches=4)
    mean, var = moments(x)
    assert done.batches == 4 and set(done.layers) == {"bn_in", "bn_conv", "bn_fc"}
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, atol=1e-4)
    # Fused BatchNorm keeps each batch's variance with Bessel's correction (2304 values).
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=2e-3)


def test_deeper_layers_get_the_statistics_of_their_own_inputs():
    model, x = with_bn(), data()
    bn_stats.reestimate(model, batches(x), batches=4)
    # In training mode every BatchNorm normalises by its batch; reproduce that for bn_fc.
    upstream = tf_keras.Model(model.input, model.get_layer("fc").output)
    inputs = np.concatenate([upstream(b, training=True).numpy() for b in np.split(x, 4)])
    mean, var = moments(inputs)
    bn = model.get_layer("bn_fc")
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=2e-2)


def test_batches_are_pooled_into_the_population_statistics():
    # Two batches of different means: the pooled variance holds the gap between them.
    x = np.concatenate([data(64, mean=0.0, std=1.0), data(64, mean=4.0, std=1.0)])
    model = with_bn()
    bn_stats.reestimate(model, batches(x, labels=False), batches=2)
    mean, var = moments(x)
    bn = model.get_layer("bn_in")
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=2e-3)
    assert np.all(bn.moving_variance.numpy() > 4.5)  # 1 within, 4 between


def test_only_moving_statistics_change_and_the_flags_are_restored():
    model = with_bn()
    model.get_layer("bn_conv").trainable = False
    before = {w.name: w.numpy() for w in model.weights}
    bn_stats.reestimate(model, batches(data()), batches=2)
    for w in model.weights:
        moved = not np.allclose(w.numpy(), before[w.name])
        assert moved == ("moving_" in w.name), w.name
    bn = model.get_layer("bn_conv")
    assert bn.momentum == 0.99 and bn.trainable is False
    assert all(layer.momentum == 0.99 for layer in bn_stats.batchnorm_layers(model))


def test_accuracy_with_stale_statistics_comes_back():
    # Outputs in inference mode, after re-estimation, match training-mode outputs on one batch.
    model, x = with_bn(), data(64)
    bn_stats.reestimate(model, batches(x), batches=1)
    np.testing.assert_allclose(model(x, training=False).numpy(),
                               model(x, training=True).numpy(), rtol=1e-2, atol=1e-2)


def test_a_nested_models_batchnorm_is_found_and_set():
    inner_in = tf_keras.Input(SHAPE)
    inner = tf_keras.Model(inner_in, L.BatchNormalization(name="inner_bn")(inner_in),
                           name="inner")
    inner.trainable = False
    inputs = tf_keras.Input(SHAPE)
    outer = tf_keras.Model(inputs, L.GlobalAveragePooling2D()(inner(inputs)))
    x = data()
    done = bn_stats.reestimate(outer, batches(x), batches=4)
    assert done.layers == ("inner_bn",)
    np.testing.assert_allclose(inner.get_layer("inner_bn").moving_mean.numpy(), moments(x)[0],
                               atol=1e-4)
    assert inner.trainable is False and inner.get_layer("inner_bn").trainable is False


def test_a_model_without_batchnorm_is_left_alone():
    inputs = tf_keras.Input(SHAPE)
    model = tf_keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(inputs)))
    before = [w.numpy() for w in model.weights]
    done = bn_stats.reestimate(model, batches(data()), batches=4)
    assert done == bn_stats.Reestimation((), 0, 0.0)
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)


def test_zero_batches_does_nothing():
    model = with_bn()
    assert bn_stats.reestimate(model, batches(data()), batches=0).batches == 0
    assert np.allclose(model.get_layer("bn_in").moving_mean.numpy(), 0)


def test_more_batches_than_the_data_holds_uses_what_there_is():
    assert bn_stats.reestimate(with_bn(), batches(data(128)), batches=10).batches == 2


@pytest.mark.parametrize("count, dataset, message", [
    (-1, batches(data(64)), "batches=-1 must be >= 0"),
    (3, batches(data(64)).take(0), "yielded no batch"),
])
def test_bad_arguments_name_the_fix(count, dataset, message):
    with pytest.raises(pipeline.PruningError, match=message):
        bn_stats.reestimate(with_bn(), dataset, batches=count)


def test_fit_re_estimates_after_training_when_the_recipe_says_so(tmp_path):
    from pipeline.data import datasets as data_sets
    from pipeline.training import fit as train
    x = data(128)
    train_batches = batches(x, 32).repeat()
    datasets = data_sets.Datasets(
        train=train_batches, val=batches(x, 32).take(0), test=batches(x, 32), calibration=None,
        input_shape=SHAPE, class_names=("a", "b"), sizes={"train": 128, "val": 0, "test": 128},
        steps_per_epoch=4)
    results = {}
    for count in (0, 4):
        model = with_bn()
        fitted = train.fit(model, datasets, train.Recipe(epochs=1, lr=1e-3, optimizer="adam",
                                                         bn_recalibrate_batches=count),
                           str(tmp_path / str(count)), verbose=0)
        results[count] = (fitted.bn_batches, model.get_layer("bn_in").moving_mean.numpy())
    assert results[0][0] == 0 and results[4][0] == 4
    # Four Adam steps at momentum 0.99 leave bn_in near its initial 0; re-estimated, near 5.
    np.testing.assert_allclose(results[4][1], moments(x)[0], atol=1e-4)
    assert np.all(results[0][1] < 1.0)
    with pytest.raises(pipeline.PruningError, match="bn_recalibrate_batches >= 0"):
        train.Recipe(bn_recalibrate_batches=-1)
