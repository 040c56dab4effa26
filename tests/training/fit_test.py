"""pipeline.training.fit: the recipe, its optimizer and schedule, and a short fit.

Distillation is tests/training/distill_test.py, training under a strategy
tests/training/distribute_test.py. The fits here are two epochs of two steps
on 64 random 8x8 images.
"""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import pipeline
from kerases import keras_id
from pipeline.data import datasets as data
from pipeline.training import fit as train

def tiny(K, activation="softmax"):
    K.utils.set_random_seed(0)
    L = K.layers
    x = inputs = K.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inputs, L.Dense(4, activation=activation, name="head")(x))


def random_datasets(val=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 4, 64))).batch(32)
    return data.Datasets(train=batches.repeat(), val=batches.take(val // 32), test=batches,
                         calibration=batches.unbatch(), input_shape=(8, 8, 1),
                         class_names=("a", "b", "c", "d"),
                         sizes={"train": 64, "val": val, "test": 64}, steps_per_epoch=2)


@pytest.mark.parametrize("fields, message", [
    (dict(optimizer="rmsprop"), "optimizer must be one of \\('sgd', 'adam', 'adamw'\\)"),
    (dict(epochs=-1), "epochs >= 0, lr > 0"),
    (dict(lr=0.0), "epochs >= 0, lr > 0"),
    (dict(patience=-1), "patience >= 0"),
    (dict(weight_decay=-0.1), "weight_decay >= 0"),
    (dict(epochs=2, warmup_epochs=3), "0 <= warmup_epochs <= epochs"),
    (dict(label_smoothing=1.0), "label_smoothing in \\[0, 1\\)"),
])
def test_a_bad_recipe_names_the_rule(fields, message):
    with pytest.raises(pipeline.PruningError, match=message):
        train.Recipe(**fields)


def test_recipe_from_a_config_section_ignores_other_keys():
    recipe = train.Recipe.from_config({"epochs": 3, "lr": 0.1, "batch_size": 128,
                                       "optimizer": "adam"})
    assert recipe == train.Recipe(epochs=3, lr=0.1, optimizer="adam")


def schedule_of(K, optimizer):
    """The learning-rate schedule an optimizer was built with, as a function of the step."""
    return K.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])


def test_warm_up_then_cosine_decay_over_all_steps(K):
    recipe = train.Recipe(epochs=4, lr=0.2, warmup_epochs=1)
    schedule = schedule_of(K, train.make_optimizer(recipe, steps_per_epoch=10, K=K))
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(5)) == pytest.approx(0.1)  # halfway up the warm-up
    assert float(schedule(10)) == pytest.approx(0.2)
    assert float(schedule(25)) == pytest.approx(0.1, abs=1e-6)  # halfway down the cosine
    assert float(schedule(40)) == pytest.approx(0.0, abs=1e-6)
    flat = schedule_of(K, train.make_optimizer(train.Recipe(epochs=2, lr=0.3), 5, K))
    assert float(flat(0)) == pytest.approx(0.3)


@pytest.mark.parametrize("name, cls", [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW")])
def test_the_recipe_picks_the_optimizer(K, name, cls):
    optimizer = train.make_optimizer(train.Recipe(optimizer=name, weight_decay=0.01), 4, K)
    assert type(optimizer) is getattr(K.optimizers, cls)
    assert optimizer.get_config()["weight_decay"] == pytest.approx(0.01)
    if name == "sgd":
        assert optimizer.get_config()["nesterov"] and optimizer.get_config()["momentum"] == 0.9


@pytest.mark.parametrize("activation", ["softmax", None])
def test_the_loss_matches_the_output(K, activation):
    """Probabilities or logits, with and without label smoothing: the cross-entropy by hand."""
    model = tiny(K, activation)
    x = np.random.default_rng(1).normal(size=(6, 8, 8, 1)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 0, 1])
    out = model(x).numpy()
    probs = out if activation else tf.nn.softmax(out).numpy()
    for smoothing in (0.0, 0.2):
        train.compile_model(model, train.Recipe(label_smoothing=smoothing), 2)
        target = np.eye(4)[y] * (1 - smoothing) + smoothing / 4
        expected = -(target * np.log(probs)).sum(1).mean()
        assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(expected, rel=1e-4)


def test_fit_trains_in_place_and_logs_each_epoch(K, tmp_path):
    model = tiny(K)
    before = model.get_weights()
    result = train.fit(model, random_datasets(), train.Recipe(epochs=2, lr=0.05),
                       str(tmp_path), verbose=0)
    assert result.model is model and result.epochs == 2 and result.seconds > 0
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(result.history)
    assert all(len(v) == 2 and isinstance(v[0], float) for v in result.history.values())
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch") and len(lines) == 3
    assert not any((tmp_path / "checkpoint").rglob("*"))  # deleted once fit completes
    scores = train.evaluate(model, random_datasets().test)
    assert set(scores) == {"accuracy", "loss"} and 0.0 <= scores["accuracy"] <= 1.0


def test_without_validation_data_fit_still_runs(K, tmp_path):
    result = train.fit(tiny(K), random_datasets(val=0), train.Recipe(epochs=1, patience=1),
                       str(tmp_path), verbose=0)
    assert result.epochs == 1 and "val_accuracy" not in result.history


def test_zero_epochs_compiles_without_training(K, tmp_path):
    model = tiny(K)
    before = model.get_weights()
    result = train.fit(model, random_datasets(), train.Recipe(epochs=0), str(tmp_path))
    assert (result.history, result.epochs, result.seconds) == ({}, 0, 0.0)
    assert model.optimizer is not None and model.loss is not None
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_interrupted_fit_resumes_from_its_last_finished_epoch(K, tmp_path):
    """The first run dies in its second epoch; the rerun trains only the epochs left."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 4, 32)
    served = []

    def dying():
        while True:
            served.append(1)
            if len(served) == 4:  # the second batch of epoch 2
                raise RuntimeError("killed")
            yield x, y

    spec = (tf.TensorSpec((32, 8, 8, 1), tf.float32), tf.TensorSpec((32,), tf.int64))
    broken = dataclasses.replace(random_datasets(),
                                 train=tf.data.Dataset.from_generator(dying, output_signature=spec))
    recipe = train.Recipe(epochs=3, lr=0.05)
    with pytest.raises(Exception, match="killed"):
        train.fit(tiny(K), broken, recipe, str(tmp_path), verbose=0)
    backup = "*.index" if keras_id(K) == "tf_keras" else "*.weights.h5"
    assert any((tmp_path / "checkpoint").rglob(backup))
    result = train.fit(tiny(K), random_datasets(), recipe, str(tmp_path), verbose=0)
    assert result.epochs == 3 and len(result.history["loss"]) == 2
    rows = (tmp_path / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]


def test_the_optimizer_is_of_the_models_keras(K, tmp_path):
    model = tiny(K)
    train.fit(model, random_datasets(), train.Recipe(epochs=1), str(tmp_path), verbose=0)
    assert type(model.optimizer).__module__.split(".")[0] == K.__name__
    assert type(train.make_optimizer(train.Recipe(), 4)) is tf_keras.optimizers.SGD  # default
