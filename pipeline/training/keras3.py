"""The Keras 3 trainers: distillation through ``keras.distillation``, and multi-head fine-tunes.

Imported only when a Keras 3 model is trained (it imports Keras 3), by
:func:`pipeline.training.distill.make_distiller` and
:func:`pipeline.training.heads.make_trainer`; the tf_keras trainers live
beside those functions.

* :func:`distiller` uses Keras' own ``keras.distillation.Distiller`` with
  ``LogitsDistillation`` (KL divergence at temperature T, scaled by T^2): the
  same loss as the tf_keras :class:`pipeline.training.distill.Distiller`,
  ``(1 - alpha) * CE + alpha * T^2 * KL``. It distils logits, so a model
  ending in softmax takes part through a *logits view*: the same layers and
  variables, ending before the softmax (:func:`logits_model`). Its
  validation loss is the same weighted total (the tf_keras one reports the
  plain cross-entropy); ``val_accuracy`` is the student's either way.
* :class:`HeadsTrainer` is the Keras 3 twin of
  :class:`pipeline.training.heads.HeadsTrainer` (cross-entropy on the
  classifier head, mean squared error to the teacher on the others). Its
  training step uses a ``tf.GradientTape``: the run trains on the TensorFlow
  backend.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from pipeline import keras_api
from pipeline.errors import PruningError
from pipeline.training import heads


class DenseLogits(keras.layers.Layer):
    """``dense``'s affine map without its activation, sharing its variables.

    Tracks ``dense``, so a model holding this layer trains ``dense``'s kernel and bias.
    """

    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense

    def call(self, features):
        z = keras.ops.matmul(features, self.dense.kernel)
        return z + self.dense.bias if self.dense.use_bias else z


def logits_model(model, probabilities: bool):
    """``model`` itself if it outputs logits, else a view ending before its softmax.

    Raises:
      PruningError: the softmax sits on a layer other than Dense or Activation/Softmax.
    """
    if not probabilities:
        return model
    last = model.layers[-1]
    if isinstance(last, (keras.layers.Activation, keras.layers.Softmax)):
        return keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    if isinstance(last, keras.layers.Dense):
        logits = DenseLogits(last, name=f"{last.name}_logits")(last.input)
        return keras.Model(model.inputs, logits, name=f"{model.name}_logits")
    raise PruningError(f"cannot read logits before the softmax of '{last.name}' "
                       f"({type(last).__name__}); end the model in Dense or Activation")


def distiller(student, teacher, student_probabilities: bool, teacher_probabilities: bool,
              temperature: float, alpha: float):
    """A ``keras.distillation.Distiller`` training ``student``'s variables from ``teacher``.

    Compile it with a *from-logits* loss (it sees the student's logits view).
    The teacher's layers are frozen while it exists; call :func:`release`
    after training to give them back their ``trainable`` flags.
    """
    frozen = _flags(teacher)
    trainer = _Distiller(
        teacher=logits_model(teacher, teacher_probabilities),
        student=logits_model(student, student_probabilities),
        # loss= an instance: the default, the string "kl_divergence", becomes a plain function
        # that LogitsDistillation (Keras 3.15) applies to the scaled logits themselves, with
        # no softmax and no T^2; only a KLDivergence instance gets both.
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=temperature, loss=keras.losses.KLDivergence()),
        student_loss_weight=1.0 - alpha)
    trainer.pipeline_frozen = frozen
    trainer.probabilities = False  # it outputs the student's logits
    return trainer


class _Distiller(keras.distillation.Distiller):
    """``keras.distillation.Distiller`` that also adds the student's own losses.

    Its ``compute_loss`` (Keras 3.15) drops them, so a student's kernel regularizers
    would not count; ``Model.compute_loss`` and the tf_keras Distiller add them.
    """

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        if self.student.losses:
            loss = keras.ops.add(loss, keras.ops.sum(self.student.losses))
        return loss


def release(trainer) -> None:
    """Restores the ``trainable`` flags a :func:`distiller` froze on its teacher's layers.

    In the order they were read, parents first: setting a layer's flag sets its
    sublayers', which their own saved flags then overwrite.
    """
    for layer, trainable in getattr(trainer, "pipeline_frozen", ()):
        layer.trainable = trainable


def _flags(model):
    """``(layer, trainable)`` of ``model`` and every layer in it at any depth (nested models,
    and the layers of custom layers), parents first."""
    return [(layer, layer.trainable) for layer in keras_api.layers_within(model)]


class HeadsTrainer(keras.Model):
    """Trains a multi-head Keras 3 ``student``: cross-entropy on head ``index``, every
    other head held to ``teacher``'s (mean squared error, weight ``head_weight``).

    ``call`` returns the classifier head, so ``evaluate`` and ``EarlyStopping``
    see a plain classifier; only ``student``'s variables are updated.
    """

    def __init__(self, student, teacher, index: int, probabilities: bool,
                 head_weight: float = 1.0):
        super().__init__(name="heads_trainer")
        self.student, self.teacher, self.index = student, teacher, int(index)
        self.probabilities, self.head_weight = bool(probabilities), float(head_weight)
        self._total = keras.metrics.Mean(name="total_loss")
        self._held = keras.metrics.Mean(name="heads_loss")

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)[self.index]

    def train_step(self, data):
        x, y = data[0], data[1]
        targets = [tf.stop_gradient(t) for t in self.teacher(x, training=False)]
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            loss, held, scores = heads.heads_loss(self, x, y, targets)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self._total.update_state(loss)
        self._held.update_state(held)
        logs = self.compute_metrics(x, y, scores)
        logs.update({"loss": self._total.result(), "heads_loss": self._held.result()})
        return {k: v for k, v in logs.items() if k != "total_loss"}

    def test_step(self, data):
        logs = super().test_step(data)
        return {k: v for k, v in logs.items() if k not in ("total_loss", "heads_loss")}
