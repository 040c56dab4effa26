"""Distillation: exact logits, the loss, and a Distiller step that trains only the student."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from pipeline.training import distill


def classifier(head: str, seed: int = 0):
    tf_keras.utils.set_random_seed(seed)
    inputs = tf_keras.Input((6,))
    x = tf_keras.layers.Dense(8, activation="relu")(inputs)
    if head == "dense_softmax":
        out = tf_keras.layers.Dense(4, activation="softmax")(x)
    elif head == "activation":
        out = tf_keras.layers.Activation("softmax")(tf_keras.layers.Dense(4)(x))
    else:
        out = tf_keras.layers.Dense(4)(x)
    return tf_keras.Model(inputs, out)


@pytest.mark.parametrize("head", ["dense_softmax", "activation", "logits"])
def test_logits_are_exact(head):
    model = classifier(head)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    logits = distill.logits_function(model)(x, training=False).numpy()
    out = model(x).numpy()
    expected = out if head == "logits" else np.log(out)
    # softmax is shift-invariant: compare the log-softmax of the logits.
    np.testing.assert_allclose(tf.nn.log_softmax(logits).numpy(),
                               expected - np.log(np.exp(expected).sum(-1, keepdims=True)),
                               atol=1e-5)
    assert distill.outputs_probabilities(model) == (head != "logits")


def test_sigmoid_output_is_refused(K):
    inputs = K.Input((3,))
    model = K.Model(inputs, K.layers.Dense(2, activation="sigmoid")(inputs))
    with pytest.raises(pipeline.PruningError, match="activation 'sigmoid'"):
        distill.outputs_probabilities(model)
    with pytest.raises(pipeline.PruningError, match="activation 'sigmoid'"):
        distill.make_distiller(model, model)


@pytest.mark.parametrize("head", ["dense_softmax", "activation", "softmax_layer", "logits"])
def test_outputs_probabilities_in_either_keras(K, head):
    inputs = K.Input((6,))
    x = K.layers.Dense(4, activation="softmax" if head == "dense_softmax" else None)(inputs)
    if head == "activation":
        x = K.layers.Activation("softmax")(x)
    elif head == "softmax_layer":
        x = K.layers.Softmax()(x)
    assert distill.outputs_probabilities(K.Model(inputs, x)) == (head != "logits")


@pytest.mark.parametrize("temperature, alpha", [(0.0, 0.5), (2.0, 1.5), (2.0, -0.1)])
def test_make_distiller_refuses_bad_settings_in_either_keras(K, temperature, alpha):
    inputs = K.Input((6,))
    model = K.Model(inputs, K.layers.Dense(4)(inputs))
    with pytest.raises(pipeline.PruningError, match="temperature > 0 and alpha in"):
        distill.make_distiller(model, model, temperature, alpha)


def test_distillation_loss():
    z = tf.constant([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    assert float(distill.distillation_loss(z, z, 4.0)) == pytest.approx(0.0, abs=1e-6)
    t, s, temp = z, tf.constant([[3.0, 2.0, 1.0], [0.0, 0.0, 0.0]]), 2.0
    p, q = tf.nn.softmax(t / temp).numpy(), tf.nn.softmax(s / temp).numpy()
    kl = (p * (np.log(p) - np.log(q))).sum(-1).mean()
    assert float(distill.distillation_loss(t, s, temp)) == pytest.approx(temp ** 2 * kl, rel=1e-5)


def test_distiller_trains_only_the_student_towards_the_teacher():
    teacher, student = classifier("dense_softmax", 1), classifier("dense_softmax", 2)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student_weights = [w.copy() for w in student.get_weights()]
    x = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    y = np.zeros(64, np.int64)
    d = distill.Distiller(student, teacher, temperature=2.0, alpha=1.0)
    d.compile(optimizer=tf_keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    t_logits = distill.logits_function(teacher)(x, training=False)
    gap_before = float(distill.distillation_loss(
        t_logits, distill.logits_function(student)(x, training=False), 2.0))
    history = d.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert {"loss", "kd_loss", "accuracy"} <= set(history)
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a) for b, a in zip(student_weights, student.get_weights()))
    gap_after = float(distill.distillation_loss(
        t_logits, distill.logits_function(student)(x, training=False), 2.0))
    assert gap_after < gap_before


def test_bad_settings_raise():
    with pytest.raises(pipeline.PruningError, match="temperature > 0"):
        distill.Distiller(classifier("logits"), classifier("logits"), temperature=0.0)
