"""Which output of a multi-head model is the classifier, and how the other heads are kept.

A model from outside may have several outputs: MTCNN's O-Net gives face
classification (softmax), a bounding box (Dense(4)) and landmarks
(Dense(10)). The pipeline prunes, fine-tunes and exports the whole model
but has labels for one head only. :func:`classifier_output` picks it: the
output named by ``model.output``, or else the single output whose width
equals the data's class count (when several do, the single one of them that
ends in softmax). Fine-tuning (:class:`HeadsTrainer`) trains that head on
the labels and holds every other head to the unpruned model's outputs (mean
squared error to the teacher), so the bbox and landmark heads stay useful
without labels for them. Accuracy, the sensitivity scan and the LiteRT
checks read the classifier output.

Example:
  >>> k = classifier_output(onet, num_classes=2)  # 'conv6-1', the 2-way softmax
  >>> view = classifier_view(onet, k)  # same layers and weights, one output
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from pipeline import keras_api
from pipeline.errors import PruningError

_SET = "pass output=<one of those output names>"


class HeadError(PruningError):
    """No output, or more than one, can be the classifier the labels train."""


def output_names(model) -> list[str]:
    """The name of the layer producing each of ``model``'s outputs, in output order."""
    return list(model.output_names)


def output_layer(model, index: int):
    """The layer producing output ``index``."""
    return model.get_layer(output_names(model)[index])


def _describe(model) -> str:
    return ", ".join(f"{name} {tuple(t.shape)[1:]}"
                     for name, t in zip(output_names(model), model.outputs))


def ends_in_softmax(layer) -> bool:
    """Whether ``layer`` is a softmax or applies one as its activation."""
    if type(layer).__name__ == "Softmax":
        return True
    return getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"


def classifier_output(model, num_classes: int | None, name: str = "",
                      where: str = "the model") -> int:
    """The index of the output that the labels train and the accuracy is read from.

    Args:
      model: a functional tf_keras model.
      num_classes: the data's class count (None: any width, the single softmax output).
      name: ``model.output``: the output's layer name ('' = automatic).
      where: how errors name the model (its path).

    Returns:
      0 for a single-output model (its width is checked elsewhere); else the chosen index.

    Raises:
      HeadError: ``name`` names no output; automatic and no output, or several,
        have ``num_classes`` values (ending in softmax when several do).
    """
    names = output_names(model)
    if name:
        if name not in names:
            raise HeadError(f"output={name!r} is not an output of {where} (its "
                            f"outputs: {_describe(model)}); {_SET}", argument="output")
        return names.index(name)
    if len(names) == 1:
        return 0
    layers = [output_layer(model, i) for i in range(len(names))]
    wide = [i for i, t in enumerate(model.outputs)
            if num_classes is None or t.shape[-1] == num_classes]
    if len(wide) > 1 or num_classes is None:
        wide = [i for i in wide if ends_in_softmax(layers[i])] or wide
    if len(wide) != 1:
        found = "none" if not wide else f"{len(wide)}"
        kind = f"a {num_classes}-class classifier" if num_classes else "a softmax classifier"
        raise HeadError(f"{where} has {len(names)} outputs ({_describe(model)}) and {found} "
                        f"of them is {kind} ending in softmax or logits; {_SET}",
                        argument="output")
    return wide[0]


def classifier_view(model, index: int):
    """``model``'s layers and weights with only output ``index`` (``model`` itself if single)."""
    if len(model.outputs) == 1:
        return model
    return keras_api.of(model).Model(model.inputs, model.outputs[index],
                                     name=f"{model.name}_classifier")


def make_trainer(student, teacher, index: int, probabilities: bool, head_weight: float = 1.0):
    """The multi-head trainer of ``student`` against ``teacher``, in their Keras.

    tf_keras: :class:`HeadsTrainer`; Keras 3: its twin
    :class:`pipeline.training.keras3.HeadsTrainer`. Same arguments, same losses.

    Raises:
      HeadError: the teacher's output count differs from the student's.
    """
    if len(student.outputs) != len(teacher.outputs):
        raise HeadError(f"the teacher has {len(teacher.outputs)} outputs and the student "
                        f"{len(student.outputs)}; distil a model from its own unpruned "
                        "original")
    if not keras_api.is_keras3(student):
        return HeadsTrainer(student, teacher, index, probabilities, head_weight)
    from pipeline.training import keras3  # noqa: PLC0415  (imports Keras 3)

    return keras3.HeadsTrainer(student, teacher, index, probabilities, head_weight)


def heads_loss(trainer, x, y, targets):
    """``(loss, held, scores)`` of a heads trainer's step (either Keras' trainer).

    ``loss`` is the classifier head's cross-entropy on the labels, plus
    ``head_weight`` times ``held`` (the mean squared error of every other head to
    the teacher's ``targets``), plus the student's regularization losses;
    ``scores`` is the classifier head's output. Call it inside the gradient tape.
    """
    outputs = trainer.student(x, training=True)
    scores = outputs[trainer.index]
    hard = tf.reduce_mean(keras_api.of(trainer.student).losses.sparse_categorical_crossentropy(
        y, scores, from_logits=not trainer.probabilities))
    held = tf.add_n([tf.reduce_mean(tf.square(out - target))
                     for i, (out, target) in enumerate(zip(outputs, targets))
                     if i != trainer.index])
    loss = hard + trainer.head_weight * held
    if trainer.student.losses:
        loss += tf.add_n(trainer.student.losses)
    return loss, held, scores


class HeadsTrainer(tf_keras.Model):
    """Trains a multi-head ``student``: cross-entropy on head ``index``, every other head
    held to ``teacher``'s (mean squared error, weight ``head_weight``).

    ``call`` returns the classifier head, so ``evaluate`` and ``EarlyStopping``
    see a plain classifier; only ``student``'s variables are updated. Made by
    :func:`make_trainer`, which checks that the two models' outputs match.
    """

    def __init__(self, student, teacher, index: int, probabilities: bool,
                 head_weight: float = 1.0):
        super().__init__(name="heads_trainer")
        self.student, self.teacher, self.index = student, teacher, int(index)
        self.probabilities, self.head_weight = bool(probabilities), float(head_weight)
        self._loss_tracker = tf_keras.metrics.Mean(name="total_loss")
        self._heads_tracker = tf_keras.metrics.Mean(name="heads_loss")

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)[self.index]

    @property
    def metrics(self):
        return super().metrics + [self._loss_tracker, self._heads_tracker]

    def test_step(self, data):
        logs = super().test_step(data)
        return {k: v for k, v in logs.items() if k not in ("total_loss", "heads_loss")}

    def train_step(self, data):
        x, y = data[0], data[1]
        targets = [tf.stop_gradient(t) for t in self.teacher(x, training=False)]
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            loss, held, scores = heads_loss(self, x, y, targets)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self._loss_tracker.update_state(loss)
        self._heads_tracker.update_state(held)
        self.compiled_metrics.update_state(y, scores)
        logs = {"loss": self._loss_tracker.result(), "heads_loss": self._heads_tracker.result()}
        logs.update({m.name: m.result() for m in self.compiled_metrics.metrics})
        return logs
