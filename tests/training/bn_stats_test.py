"""pipeline.training.bn_stats: moving statistics re-estimated from data, nothing else moved."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import pipeline
from pipeline.training import bn_stats

SHAPE = (6, 6, 3)


def data(n=256, mean=5.0, std=2.0):
    rng = np.random.default_rng(0)
    return (mean + std * rng.normal(size=(n, *SHAPE))).astype(np.float32)


def with_bn(K=tf_keras):
    """Conv -> BN -> ReLU -> GAP -> Dense -> BN (1-D) -> Dense, moving stats at 0 and 1."""
    K.utils.set_random_seed(0)
    L = K.layers
    x = inputs = K.Input(SHAPE)
    x = L.BatchNormalization(name="bn_in")(x)
    x = L.Conv2D(4, 3, name="conv")(x)
    x = L.ReLU()(L.BatchNormalization(name="bn_conv")(x))
    x = L.Dense(5, name="fc")(L.GlobalAveragePooling2D()(x))
    x = L.BatchNormalization(name="bn_fc")(x)
    return K.Model(inputs, L.Dense(2, name="head")(x))


def batches(x, size=64, labels=True):
    if labels:
        return tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x), np.int64))).batch(size)
    return tf.data.Dataset.from_tensor_slices(x).batch(size)


def moments(values):
    axes = tuple(range(values.ndim - 1))
    return values.mean(axes), values.var(axes)


def test_the_input_layer_gets_the_datas_mean_and_variance(K):
    model, x = with_bn(K), data()
    bn = model.get_layer("bn_in")
    assert np.allclose(bn.moving_mean.numpy(), 0) and np.allclose(bn.moving_variance, 1)
    done = bn_stats.reestimate(model, batches(x), batches=4)
    mean, var = moments(x)
    assert done.batches == 4 and set(done.layers) == {"bn_in", "bn_conv", "bn_fc"}
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, atol=1e-4)
    # Fused BatchNorm keeps each batch's variance with Bessel's correction (2304 values).
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=2e-3)


def test_deeper_layers_get_the_statistics_of_their_own_inputs(K):
    model, x = with_bn(K), data()
    bn_stats.reestimate(model, batches(x), batches=4)
    # In training mode every BatchNorm normalises by its batch; reproduce that for bn_fc.
    upstream = K.Model(model.input, model.get_layer("fc").output)
    inputs = np.concatenate([upstream(b, training=True).numpy() for b in np.split(x, 4)])
    mean, var = moments(inputs)
    bn = model.get_layer("bn_fc")
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=2e-2)


def test_batches_are_pooled_into_the_population_statistics(K):
    # Two batches of different means: the pooled variance holds the gap between them.
    x = np.concatenate([data(64, mean=0.0, std=1.0), data(64, mean=4.0, std=1.0)])
    model = with_bn(K)
    bn_stats.reestimate(model, batches(x, labels=False), batches=2)
    mean, var = moments(x)
    bn = model.get_layer("bn_in")
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=2e-3)
    assert np.all(bn.moving_variance.numpy() > 4.5)  # 1 within, 4 between


def test_only_moving_statistics_change_and_the_flags_are_restored(K):
    model = with_bn(K)
    model.get_layer("bn_conv").trainable = False
    before = [w.numpy() for w in model.weights]  # Keras 3 names are not unique
    bn_stats.reestimate(model, batches(data()), batches=2)
    for w, value in zip(model.weights, before):
        moved = not np.allclose(w.numpy(), value)
        assert moved == ("moving_" in w.name), w.name
    bn = model.get_layer("bn_conv")
    assert bn.momentum == 0.99 and bn.trainable is False
    assert all(layer.momentum == 0.99 for layer in bn_stats.batchnorm_layers(model))


def test_accuracy_with_stale_statistics_comes_back(K):
    # Outputs in inference mode, after re-estimation, match training-mode outputs on one batch.
    model, x = with_bn(K), data(64)
    bn_stats.reestimate(model, batches(x), batches=1)
    np.testing.assert_allclose(model(x, training=False).numpy(),
                               model(x, training=True).numpy(), rtol=1e-2, atol=1e-2)


def test_a_nested_models_batchnorm_is_found_and_set(K):
    inner_in = K.Input(SHAPE)
    inner = K.Model(inner_in, K.layers.BatchNormalization(name="inner_bn")(inner_in),
                    name="inner")
    inner.trainable = False
    inputs = K.Input(SHAPE)
    outer = K.Model(inputs, K.layers.GlobalAveragePooling2D()(inner(inputs)))
    x = data()
    done = bn_stats.reestimate(outer, batches(x), batches=4)
    assert done.layers == ("inner_bn",)
    np.testing.assert_allclose(inner.get_layer("inner_bn").moving_mean.numpy(), moments(x)[0],
                               atol=1e-4)
    assert inner.trainable is False and inner.get_layer("inner_bn").trainable is False


def test_a_model_without_batchnorm_is_left_alone(K):
    inputs = K.Input(SHAPE)
    model = K.Model(inputs, K.layers.Dense(2)(K.layers.GlobalAveragePooling2D()(inputs)))
    before = [w.numpy() for w in model.weights]
    done = bn_stats.reestimate(model, batches(data()), batches=4)
    assert done == bn_stats.Reestimation((), 0, 0.0)
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)


def test_zero_batches_does_nothing(K):
    model = with_bn(K)
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


def test_fit_re_estimates_after_training_when_the_recipe_says_so(K, tmp_path):
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
        model = with_bn(K)
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


def slow_bn(K):
    """BatchNorm at momentum 0.999 (Keras applications' value) on the input, then a classifier."""
    K.utils.set_random_seed(0)
    x = inputs = K.Input(SHAPE)
    x = K.layers.BatchNormalization(momentum=0.999, name="bn_in")(x)
    x = K.layers.GlobalAveragePooling2D()(K.layers.Conv2D(4, 3, activation="relu")(x))
    return K.Model(inputs, K.layers.Dense(2, activation="softmax", name="head")(x))


def fit_data(x, val):
    """``x`` in 4 unshuffled training batches of 32 (labels: the first channel's sign), val."""
    from pipeline.data import datasets as data_sets

    def labelled(images, size=32):
        labels = (images[..., 0].mean(axis=(1, 2)) > images[..., 0].mean()).astype(np.int64)
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(size)
    return data_sets.Datasets(
        train=labelled(x).repeat(), val=labelled(val), test=labelled(val), calibration=None,
        input_shape=SHAPE, class_names=("a", "b"),
        sizes={"train": len(x), "val": len(val), "test": len(val)}, steps_per_epoch=4)


@pytest.fixture
def spy(monkeypatch):
    """Records ``bn_in``'s moving mean at the start of each validation, after the pipeline's
    callbacks ran, and the callbacks ``fit`` used."""
    from pipeline import keras_api
    from pipeline.training import fit as train
    seen = {"means": [], "callbacks": []}
    original = train._callbacks

    def spying(student, *args):
        callbacks = original(student, *args)
        class Spy(keras_api.of(student).callbacks.Callback):
            def on_test_begin(self, logs=None):
                seen["means"].append(student.get_layer("bn_in").moving_mean.numpy().copy())
        seen["callbacks"] = list(callbacks)
        return callbacks + [Spy()]
    monkeypatch.setattr(train, "_callbacks", spying)
    return seen


def test_validation_sees_the_training_datas_statistics(K, spy, tmp_path):
    """Four steps at momentum 0.999 leave the moving mean near 0; re-estimated, it is the
    data's mean (5) when validation starts."""
    from pipeline.training import fit as train
    x = data(128)
    for count in (0, 4):
        train.fit(slow_bn(K), fit_data(x, data(64, mean=4.0)), train.Recipe(
            epochs=1, lr=1e-3, optimizer="adam", bn_recalibrate_batches=count),
            str(tmp_path / str(count)), verbose=0)
    stale, fresh = spy["means"]
    assert np.all(np.abs(stale) < 0.1)
    np.testing.assert_allclose(fresh, moments(x)[0], atol=1e-4)


def test_the_logged_val_accuracy_is_the_models_after_fit(K, tmp_path):
    """One epoch, the same unshuffled batches re-estimated before validation and after fit:
    the logged val_accuracy is what evaluate() then measures."""
    from pipeline.training import fit as train
    rng = np.random.default_rng(1)
    val = (4.0 + 3.0 * rng.normal(size=(96, *SHAPE))).astype(np.float32)
    datasets = fit_data(data(128), val)
    model = slow_bn(K)
    result = train.fit(model, datasets, train.Recipe(epochs=1, lr=1e-2, optimizer="adam",
                                                     bn_recalibrate_batches=4),
                       str(tmp_path), verbose=0)
    assert result.bn_batches == 4
    after = train.evaluate(model, datasets.val)
    assert result.history["val_accuracy"][0] == pytest.approx(after["accuracy"], abs=1e-6)
    assert result.history["val_loss"][0] == pytest.approx(after["loss"], rel=1e-4)


def test_under_a_strategy_validation_is_not_re_estimated_and_fit_runs(spy, tmp_path):
    from pipeline.training import distribute
    from pipeline.training import fit as train
    cluster = distribute.setup("mirrored")
    model = slow_bn(tf_keras)
    result = train.fit(model, fit_data(data(128), data(64)), train.Recipe(
        epochs=1, lr=1e-3, optimizer="adam", bn_recalibrate_batches=4), str(tmp_path),
        cluster=cluster, verbose=0)
    assert result.epochs == 1 and "val_accuracy" in result.history
    assert not [c for c in spy["callbacks"] if type(c).__name__ == "BeforeValidation"]
    assert result.bn_batches == 4  # after training, on the plain model
    np.testing.assert_allclose(model.get_layer("bn_in").moving_mean.numpy(),
                               moments(data(128))[0], atol=1e-4)
