"""pipeline.training.keras3: Keras 3 distillation and the multi-head trainer, by their numbers.

The distiller's loss on one batch is checked against
``(1 - alpha) * CE + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))`` computed
by hand from exact logits; only the student's variables move; the teacher's
``trainable`` flags come back after ``fit``. Tiny models (6 features, or 8x8
images), a few steps.
"""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import keras
from pipeline.data import datasets as data
from pipeline.training import distill
from pipeline.training import fit as train
from pipeline.training import keras3

L = keras.layers
T, ALPHA = 2.0, 0.3


def classifier(head: str, seed: int = 0, K=keras):
    """Dense(8, relu) then a 4-way head: ``dense_softmax``, ``activation`` or ``logits``."""
    K.utils.set_random_seed(seed)
    inputs = K.Input((6,))
    x = K.layers.Dense(8, activation="relu", name="hidden")(inputs)
    if head == "dense_softmax":
        out = K.layers.Dense(4, activation="softmax", name="head")(x)
    elif head == "activation":
        out = K.layers.Activation("softmax", name="soft")(K.layers.Dense(4, name="head")(x))
    else:
        out = K.layers.Dense(4, name="head")(x)
    return K.Model(inputs, out)


def exact_logits(model, x):
    """The logits before the softmax, from the weights (no model call, no clipping)."""
    hidden, head = model.get_layer("hidden"), model.get_layer("head")
    h = np.maximum(x @ hidden.kernel.numpy() + hidden.bias.numpy(), 0)
    return h @ head.kernel.numpy() + head.bias.numpy()


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def expected_loss(t, s, y):
    ce = -log_softmax(s)[np.arange(len(y)), y].mean()
    p, log_p, log_q = np.exp(log_softmax(t / T)), log_softmax(t / T), log_softmax(s / T)
    return (1 - ALPHA) * ce + ALPHA * T ** 2 * (p * (log_p - log_q)).sum(-1).mean()


def compiled(student, teacher, lr=0.0):
    trainer = distill.make_distiller(student, teacher, T, ALPHA)
    train.compile_model(trainer, train.Recipe(lr=max(lr, 1e-9), optimizer="sgd", momentum=0.0),
                        1, probabilities=trainer.probabilities)
    return trainer


@pytest.mark.parametrize("head", ["dense_softmax", "activation", "logits"])
def test_the_training_loss_is_the_hinton_loss_from_exact_logits(head):
    teacher, student = classifier(head, 1), classifier(head, 2)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6)).astype(np.float32), rng.integers(0, 4, 16)
    expected = expected_loss(exact_logits(teacher, x), exact_logits(student, x), y)
    trainer = compiled(student, teacher)
    assert isinstance(trainer, keras.distillation.Distiller) and trainer.probabilities is False
    logs = trainer.train_on_batch(x, y, return_dict=True)  # loss before the (tiny) step
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    distill.release(trainer)


@pytest.mark.parametrize("head", ["dense_softmax", "activation", "logits"])
def test_only_the_students_variables_change(head):
    teacher, student = classifier(head, 1), classifier(head, 2)
    teachers, students = teacher.get_weights(), student.get_weights()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6)).astype(np.float32), rng.integers(0, 4, 16)
    trainer = compiled(student, teacher, lr=0.5)
    trainer.train_on_batch(x, y)
    distill.release(trainer)
    for before, after in zip(teachers, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    for name in ("hidden", "head"):  # the head's kernel too (behind DenseLogits)
        kernel = student.get_layer(name).kernel.numpy()
        assert not np.allclose(kernel, students[0 if name == "hidden" else 2]), name


def _nested_teacher():
    """A teacher with a frozen layer and a nested sub-model, one of whose layers is frozen."""
    keras.utils.set_random_seed(3)
    inner_in = keras.Input((8,))
    inner_a = L.Dense(8, activation="relu", name="inner_a")
    inner_b = L.Dense(8, activation="relu", name="inner_b")
    inner = keras.Model(inner_in, inner_b(inner_a(inner_in)), name="inner")
    inputs = keras.Input((6,))
    x = L.Dense(8, activation="relu", name="frozen")(inputs)
    model = keras.Model(inputs, L.Dense(4, activation="softmax", name="head")(inner(x)))
    model.get_layer("frozen").trainable = False
    inner_a.trainable = False
    return model


def _flags(model):
    found = {model.name: model.trainable}
    for layer in model.layers:
        found.update(_flags(layer) if isinstance(layer, keras.Model) else
                     {layer.name: layer.trainable})
    return found


def _student_and_data():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6,))
    student = keras.Model(inputs, L.Dense(4, activation="softmax", name="head")(
        L.Dense(8, activation="relu")(inputs)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 4, 32))).batch(16)
    datasets = data.Datasets(train=batches.repeat(), val=batches, test=batches,
                             calibration=batches.unbatch(), input_shape=(6,),
                             class_names=tuple("abcd"), sizes={"train": 32, "val": 32,
                                                               "test": 32}, steps_per_epoch=2)
    return student, datasets


def test_the_teachers_flags_are_back_after_fit(tmp_path):
    teacher = _nested_teacher()
    flags = _flags(teacher)
    trainable = [v.trainable for v in teacher.weights]
    assert flags["frozen"] is False and flags["inner_a"] is False and flags["inner_b"] is True
    student, datasets = _student_and_data()
    train.fit(student, datasets, train.Recipe(epochs=1, lr=0.01), str(tmp_path), verbose=0,
              teacher=teacher, temperature=T, alpha=ALPHA)
    assert _flags(teacher) == flags
    assert [v.trainable for v in teacher.weights] == trainable


class _Block(keras.layers.Layer):
    """A residual block as people write it: its own Dense and BatchNormalization."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = L.Dense(8, name="block_dense")
        self.norm = L.BatchNormalization(name="block_norm")

    def call(self, x, training=None):
        return x + self.norm(self.dense(x), training=training)


def test_the_flags_of_layers_inside_a_custom_layer_are_back_after_fit(tmp_path):
    """``Model.layers`` stops at the block; its frozen BatchNormalization must still be
    frozen after distillation (Keras' setter would leave it trainable)."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6,))
    block = _Block(name="block")
    x = block(L.Dense(8, activation="relu")(inputs))
    teacher = keras.Model(inputs, L.Dense(4, activation="softmax")(x))
    block.norm.trainable = False
    trainable = [(v.path, v.trainable) for v in teacher.weights]
    assert ("block/block_norm/gamma", False) in trainable
    student, datasets = _student_and_data()
    train.fit(student, datasets, train.Recipe(epochs=1, lr=0.01), str(tmp_path), verbose=0,
              teacher=teacher, temperature=T, alpha=ALPHA)
    assert block.norm.trainable is False and block.dense.trainable is True
    assert block.trainable is True and teacher.trainable is True
    assert [(v.path, v.trainable) for v in teacher.weights] == trainable


def test_the_flags_are_back_even_when_fit_fails(tmp_path):
    teacher = _nested_teacher()
    flags = _flags(teacher)
    student, datasets = _student_and_data()
    def dying():
        raise RuntimeError("killed")
        yield

    spec = (tf.TensorSpec((16, 6), tf.float32), tf.TensorSpec((16,), tf.int64))
    broken = dataclasses.replace(datasets, train=tf.data.Dataset.from_generator(
        dying, output_signature=spec))
    with pytest.raises(Exception, match="killed"):
        train.fit(student, broken, train.Recipe(epochs=1, lr=0.01), str(tmp_path), verbose=0,
                  teacher=teacher)
    assert _flags(teacher) == flags


def _agreement(student, teacher, x):
    return float(np.mean(np.argmax(student.predict(x, verbose=0), -1)
                         == np.argmax(teacher.predict(x, verbose=0), -1)))


def test_fit_with_a_teacher_raises_agreement_in_either_keras(K, tmp_path):
    """alpha=1 (the teacher only) on random labels: the student learns the teacher's answers."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 8, 8, 1)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 4, 128))).batch(32)
    datasets = data.Datasets(train=batches.repeat(), val=batches.take(0), test=batches,
                             calibration=batches.unbatch(), input_shape=(8, 8, 1),
                             class_names=tuple("abcd"), sizes={"train": 128, "val": 0,
                                                               "test": 128}, steps_per_epoch=4)

    def cnn(seed):
        K.utils.set_random_seed(seed)
        inputs = K.Input((8, 8, 1))
        h = K.layers.GlobalAveragePooling2D()(K.layers.Conv2D(8, 3, activation="relu")(inputs))
        return K.Model(inputs, K.layers.Dense(4, activation="softmax")(K.layers.Dense(16)(h)))
    teacher, student = cnn(1), cnn(2)
    before = _agreement(student, teacher, x)
    train.fit(student, datasets, train.Recipe(epochs=6, lr=1e-2, optimizer="adam"),
              str(tmp_path), verbose=0, teacher=teacher, temperature=T, alpha=1.0)
    after = _agreement(student, teacher, x)
    assert after >= before + 0.2 and after >= 0.75, (before, after)


def test_a_softmax_on_another_layer_is_refused():
    inputs = keras.Input((6,))
    model = keras.Model(inputs, L.Conv1D(4, 1, activation="softmax")(L.Reshape((6, 1))(inputs)))
    with pytest.raises(pipeline.PruningError, match="cannot read logits before the softmax"):
        keras3.logits_model(model, True)


def test_students_and_teachers_of_different_kerases_are_refused():
    import tf_keras
    with pytest.raises(pipeline.PruningError, match="come from different Kerases"):
        distill.make_distiller(classifier("logits"), classifier("logits", K=tf_keras))


def test_the_students_regularization_losses_count():
    """As in Model.compute_loss and the tf_keras Distiller (Keras 3.15's Distiller drops them)."""
    teacher = classifier("logits", 1)
    keras.utils.set_random_seed(2)
    inputs = keras.Input((6,))
    hidden = L.Dense(8, activation="relu", name="hidden",
                     kernel_regularizer=keras.regularizers.L2(1.0))
    student = keras.Model(inputs, L.Dense(4, name="head")(hidden(inputs)))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6)).astype(np.float32), rng.integers(0, 4, 16)
    penalty = float(np.sum(hidden.kernel.numpy() ** 2))
    expected = expected_loss(exact_logits(teacher, x), exact_logits(student, x), y) + penalty
    trainer = compiled(student, teacher)
    assert trainer.train_on_batch(x, y, return_dict=True)["loss"] == pytest.approx(expected,
                                                                                   rel=1e-4)
    distill.release(trainer)
