"""Knowledge distillation (Hinton et al. 2015) from the unpruned model to the pruned one.

The loss is ``(1 - alpha) * CE(labels, student) + alpha * T^2 *
KL(softmax(teacher_logits / T) || softmax(student_logits / T))``; the ``T^2``
keeps the soft term's gradients on the scale of the hard one. Logits are
read exactly, before the softmax of the output layer (see
:func:`logits_function`), never recovered from clipped probabilities.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from pipeline import keras_api
from pipeline.errors import PruningError


def outputs_probabilities(model) -> bool:
    """Whether ``model`` ends in a softmax (else its outputs are logits).

    Raises:
      PruningError: the output layer has another activation (sigmoid...).
    """
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return True
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", "linear")
    if name in ("softmax", "linear"):
        return name == "softmax"
    raise PruningError(f"output layer '{last.name}' of '{model.name}' has activation '{name}'; "
                       "the pipeline trains single-label classifiers ending in softmax or logits")


def logits_function(model):
    """A function ``f(images, training) -> logits`` sharing ``model``'s variables.

    Handles a softmax ``Dense`` output (its kernel is applied to the features
    directly), a separate softmax ``Activation``/``Softmax`` layer, and models
    that already output logits.

    Raises:
      PruningError: the softmax sits on a layer other than Dense or Activation.
    """
    if not outputs_probabilities(model):
        return lambda x, training: model(x, training=training)
    last = model.layers[-1]
    features = tf_keras.Model(model.inputs, last.input, name=f"{model.name}_features")
    if isinstance(last, (tf_keras.layers.Activation, tf_keras.layers.Softmax)):
        return lambda x, training: features(x, training=training)
    if isinstance(last, tf_keras.layers.Dense):
        def dense_logits(x, training):
            z = tf.tensordot(features(x, training=training), last.kernel, 1)
            return z + last.bias if last.use_bias else z
        return dense_logits
    raise PruningError(f"cannot read logits before the softmax of '{last.name}' "
                       f"({type(last).__name__}); end the model in Dense or Activation")


def distillation_loss(teacher_logits, student_logits, temperature: float):
    """``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over the batch."""
    t = tf.nn.log_softmax(teacher_logits / temperature)
    s = tf.nn.log_softmax(student_logits / temperature)
    kl = tf.reduce_sum(tf.exp(t) * (t - s), axis=-1)
    return temperature ** 2 * tf.reduce_mean(kl)


def make_distiller(student, teacher, temperature: float = 4.0, alpha: float = 0.5):
    """The trainer distilling ``teacher`` into ``student``, in their Keras.

    tf_keras: this module's :class:`Distiller`. Keras 3: ``keras.distillation.Distiller``
    with ``LogitsDistillation``, the same loss (:func:`pipeline.training.keras3.distiller`).
    Either has ``.probabilities``: whether its outputs are probabilities, which the
    compiled loss must know. Call :func:`release` after training.

    Raises:
      PruningError: bad temperature or alpha, an output activation other than
        softmax or linear, or the two models from different Kerases.
    """
    if temperature <= 0 or not 0 <= alpha <= 1:
        raise PruningError(f"distillation needs temperature > 0 and alpha in [0, 1]; got "
                           f"temperature={temperature}, alpha={alpha}")
    if keras_api.is_keras3(student) != keras_api.is_keras3(teacher):
        raise PruningError(f"the student '{student.name}' and the teacher '{teacher.name}' "
                           "come from different Kerases; distil within one")
    if not keras_api.is_keras3(student):
        return Distiller(student, teacher, temperature, alpha)
    from pipeline.training import keras3  # noqa: PLC0415  (imports Keras 3)

    return keras3.distiller(student, teacher, outputs_probabilities(student),
                            outputs_probabilities(teacher), temperature, alpha)


def release(trainer) -> None:
    """Undoes what a :func:`make_distiller` trainer changed on its teacher (Keras 3 freezes
    the teacher's layers); nothing for other trainers."""
    if keras_api.is_keras3(trainer):
        from pipeline.training import keras3  # noqa: PLC0415

        keras3.release(trainer)


class Distiller(tf_keras.Model):
    """Trains ``student`` against the labels and a frozen ``teacher``.

    ``call`` is the student's, so ``evaluate``, ``EarlyStopping`` and
    checkpoints work as usual; after ``fit``, keep ``distiller.student``.
    Only the student's variables are updated. Training logs ``loss`` (the
    weighted total) and ``kd_loss`` (the soft term); validation logs the
    student's plain cross-entropy as ``val_loss``.

    Example:
      >>> distiller = Distiller(pruned, baseline, temperature=4.0, alpha=0.5)
      >>> distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
      ...                   metrics=["accuracy"])
      >>> distiller.fit(train, epochs=2, steps_per_epoch=100)
    """

    def __init__(self, student, teacher, temperature: float = 4.0, alpha: float = 0.5):
        super().__init__(name="distiller")
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise PruningError(f"distillation needs temperature > 0 and alpha in [0, 1]; got "
                               f"temperature={temperature}, alpha={alpha}")
        self.student = student
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.probabilities = outputs_probabilities(student)
        self._student_logits = logits_function(student)
        self._teacher_logits = logits_function(teacher)
        self._loss_tracker = tf_keras.metrics.Mean(name="total_loss")
        self._kd_tracker = tf_keras.metrics.Mean(name="kd_loss")

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    @property
    def metrics(self):
        return super().metrics + [self._loss_tracker, self._kd_tracker]

    def test_step(self, data):
        # Validation is the student's plain loss and metrics; the trackers are training-only.
        logs = super().test_step(data)
        return {k: v for k, v in logs.items() if k not in ("total_loss", "kd_loss")}

    def train_step(self, data):
        x, y = data[0], data[1]
        teacher_logits = tf.stop_gradient(self._teacher_logits(x, training=False))
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            logits = self._student_logits(x, training=True)
            hard = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True))
            soft = distillation_loss(teacher_logits, logits, self.temperature)
            loss = (1 - self.alpha) * hard + self.alpha * soft
            if self.student.losses:
                loss += tf.add_n(self.student.losses)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self._loss_tracker.update_state(loss)
        self._kd_tracker.update_state(soft)
        self.compiled_metrics.update_state(y, tf.nn.softmax(logits))
        logs = {"loss": self._loss_tracker.result(), "kd_loss": self._kd_tracker.result()}
        logs.update({m.name: m.result() for m in self.compiled_metrics.metrics})
        return logs
