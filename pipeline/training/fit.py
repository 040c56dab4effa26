"""Baseline training and fine-tuning with Keras ``fit``.

One :class:`Recipe` describes both: optimizer (SGD with Nesterov momentum,
Adam or AdamW), a cosine learning-rate schedule with optional linear warm-up,
epochs, and early stopping on validation accuracy. :func:`fit` checkpoints
every epoch into ``directory/checkpoint`` (``BackupAndRestore``: a killed
run resumes from its last finished epoch, optimizer state and schedule
included, and the checkpoint is deleted once ``fit`` completes) and writes
TensorBoard logs to ``directory/tensorboard``. Passing ``teacher`` distils
from it (:mod:`pipeline.training.distill`). Given a ``cluster`` with a
``tf.distribute`` strategy (:func:`pipeline.training.distribute.setup`), the
model (and teacher) are copied into the strategy's scope, trained there with
``train.batch_size`` as the global batch, and the trained weights copied back
(see :mod:`pipeline.training.distribute` for the learning-rate rule and which
worker writes what).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import os
import time
from typing import Any

import tensorflow as tf

from pipeline import keras_api
from pipeline.errors import PruningError
from pipeline.training import bn_stats, distill, distribute, heads, traps
from pipeline.training.distill import outputs_probabilities

OPTIMIZERS = ("sgd", "adam", "adamw")
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train.

    Attributes:
      epochs: passes over the training split (0: no training).
      lr: peak learning rate.
      optimizer: ``sgd`` (Nesterov momentum), ``adam`` or ``adamw``.
      momentum: SGD momentum.
      weight_decay: decoupled weight decay (0: none).
      warmup_epochs: linear warm-up before the cosine decay.
      patience: stop after this many epochs without a better validation
        accuracy and restore the best weights (0: never stop early).
      label_smoothing: of the cross-entropy targets.
      jit_compile: compile training steps with XLA.
      bn_recalibrate_batches: before each validation pass (in one process; not
        under a tf.distribute strategy) and after training, re-estimate the
        BatchNorm moving statistics on this many training batches, so that
        validation accuracy, early stopping and the restored best weights see
        the statistics the model will be used with (0: keep the moving averages,
        which lag behind the weights after a short training; see
        :mod:`pipeline.training.bn_stats`).
    """

    epochs: int = 1
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0
    patience: int = 0
    label_smoothing: float = 0.0
    jit_compile: bool = False
    bn_recalibrate_batches: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise PruningError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if (self.epochs < 0 or self.lr <= 0 or self.patience < 0 or self.weight_decay < 0
                or self.bn_recalibrate_batches < 0):
            raise PruningError(f"recipe needs epochs >= 0, lr > 0, patience >= 0, "
                               f"weight_decay >= 0, bn_recalibrate_batches >= 0; got {self}")
        if not 0 <= self.warmup_epochs <= self.epochs or not 0 <= self.label_smoothing < 1:
            raise PruningError(f"recipe needs 0 <= warmup_epochs <= epochs and label_smoothing "
                               f"in [0, 1); got {self}")

    @classmethod
    def from_config(cls, config) -> "Recipe":
        """The recipe from a config section; keys it does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(config).items() if k in names})


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What :func:`fit` made.

    Attributes:
      model: the trained model.
      history: per-epoch logs of this call (after a resume: the resumed epochs only).
      epochs: epochs completed in all, counting those before a resume.
      seconds: time spent in this call.
      bn_batches: training batches the BatchNorm statistics were re-estimated on
        after training (0: none, off, or no BatchNorm layer).
    """

    model: Any
    history: dict
    epochs: int
    seconds: float
    bn_batches: int = 0


def fit(model, datasets, recipe: Recipe, directory: str, *,
        cluster: distribute.Cluster | None = None, teacher=None, temperature: float = 4.0,
        alpha: float = 0.5, verbose: int = 2, output: str = "") -> FitResult:
    """Trains ``model`` in place on ``datasets.train``, validating on ``datasets.val``.

    Args:
      model: a functional classifier (softmax or logits output) of tf_keras or Keras 3;
        it trains in its own Keras (a Keras 3 model on the TensorFlow backend).
      datasets: a :class:`pipeline.data.datasets.Datasets`.
      recipe: the :class:`Recipe`.
      directory: where checkpoints and TensorBoard logs go (created).
      cluster: the :class:`pipeline.training.distribute.Cluster` to train under
        (None: this one process, no strategy).
      teacher: a model to distil from, or None. A multi-head ``model`` needs it (its
        unpruned original): the classifier head trains on the labels and every other
        head is held to the teacher's (:class:`pipeline.training.heads.HeadsTrainer`).
      temperature: distillation temperature.
      alpha: weight of the distillation term (0: labels only, 1: teacher only).
      verbose: Keras ``fit`` verbosity.
      output: a multi-head model's classifier output by layer name ('' = automatic, see
        :func:`pipeline.training.heads.classifier_output`).

    Returns:
      A :class:`FitResult`; ``result.model`` is ``model``, trained.

    Raises:
      PruningError: bad recipe or distillation settings.
      HeadError: a multi-head model without a teacher, or no single classifier head.
      OneDnnTrapError: the model holds a layer that TF 2.21's oneDNN kernels crash
        on in training, and oneDNN is on (:mod:`pipeline.training.traps`).

    Example:
      >>> result = fit(models.build("vgg", (28, 28, 1), 10), ds, Recipe(epochs=1), "/tmp/run")
    """
    os.makedirs(directory, exist_ok=True)
    start = time.time()
    if recipe.epochs == 0:
        compile_model(model, recipe, datasets.steps_per_epoch)
        return FitResult(model, {}, 0, 0.0)
    traps.check(model, f"the model '{model.name}'")
    cluster = distribute.Cluster() if cluster is None else cluster
    student = cluster.replicate(model)  # built in the strategy's scope, chief's weights
    with cluster.scope():
        trainee = student
        if len(model.outputs) > 1:
            trainee = _heads_trainer(student, teacher, datasets.num_classes, cluster, output)
        elif teacher is not None:
            trainee = distill.make_distiller(student, cluster.replicate(teacher), temperature,
                                             alpha)
        compile_model(trainee, recipe, datasets.steps_per_epoch,
                      probabilities=getattr(trainee, "probabilities", None))
        _build(trainee, model)
    has_val = datasets.sizes.get("val", 0) > 0
    logs = cluster.write_dir(directory)
    try:
        history = trainee.fit(datasets.train, epochs=recipe.epochs,
                              steps_per_epoch=datasets.steps_per_epoch,
                              validation_data=datasets.val if has_val else None,
                              callbacks=_callbacks(student, recipe, datasets, directory, logs,
                                                   has_val, cluster.strategy is None),
                              verbose=verbose)
    finally:
        distill.release(trainee)
    cluster.discard(logs)
    if student is not model:
        model.set_weights(student.get_weights())
    if trainee is not model:  # keep the student compiled for plain evaluate()
        compile_model(model, recipe, datasets.steps_per_epoch)
    reestimated = bn_stats.reestimate(model, datasets.train, recipe.bn_recalibrate_batches)
    seconds = time.time() - start
    _LOG.info("fit: %d epochs in %.0f s", len(history.epoch), seconds)
    return FitResult(model, {k: [float(v) for v in vs] for k, vs in history.history.items()},
                     history.epoch[-1] + 1 if history.epoch else 0, seconds,
                     reestimated.batches)


def _build(trainee, model) -> None:
    """Builds a Keras 3 trainer wrapping ``model`` (its ``BackupAndRestore`` needs a built
    model; a subclassed trainer builds on its first call)."""
    if keras_api.is_keras3(trainee) and not trainee.built:
        trainee(tf.zeros((1,) + tuple(model.inputs[0].shape[1:]), model.inputs[0].dtype))


def _callbacks(student, recipe: Recipe, datasets, directory: str, logs: str, has_val: bool,
               reestimate: bool) -> list:
    """Checkpoints, CSV and TensorBoard logs, early stopping and BatchNorm re-estimation
    before each validation (``reestimate``): callbacks of ``student``'s Keras."""
    K = keras_api.of(student)
    callbacks = [
        K.callbacks.BackupAndRestore(os.path.join(directory, "checkpoint")),
        K.callbacks.CSVLogger(os.path.join(logs, "history.csv"), append=True),
    ]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(K.callbacks.TensorBoard(
            os.path.join(logs, "tensorboard"), write_graph=False, profile_batch=0))
    else:
        _no_tensorboard()
    if (has_val and reestimate and recipe.bn_recalibrate_batches
            and bn_stats.batchnorm_layers(student)):
        # First: early stopping and the CSV log then see the re-estimated accuracy.
        callbacks.insert(0, bn_stats.before_validation(student, datasets.train,
                                                       recipe.bn_recalibrate_batches))
    if recipe.patience and has_val:
        callbacks.append(K.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=recipe.patience,
            restore_best_weights=True))
    return callbacks


def _heads_trainer(student, teacher, num_classes: int, cluster, output: str = ""):
    """The :class:`heads.HeadsTrainer` of a multi-head ``student`` against ``teacher``."""
    if teacher is None:
        raise heads.HeadError(
            f"'{student.name}' has {len(student.outputs)} outputs; fine-tuning a multi-head "
            "model holds its other heads to its unpruned original: pass teacher=<that model>")
    index = heads.classifier_output(student, num_classes, output, where=f"'{student.name}'")
    probabilities = heads.ends_in_softmax(heads.output_layer(student, index))
    return heads.make_trainer(student, cluster.replicate(teacher), index, probabilities)


@functools.cache
def _no_tensorboard() -> None:
    """Warns once a process that ``fit`` writes no TensorBoard logs."""
    _LOG.warning("tensorboard is not installed: no TensorBoard logs, only history.csv")


def compile_model(model, recipe: Recipe, steps_per_epoch: int, probabilities: bool | None = None):
    """Compiles ``model`` with the recipe's optimizer, schedule, loss and accuracy metric.

    A multi-head model gets the optimizer only: :func:`evaluate` reads its classifier head.
    """
    if len(getattr(model, "outputs", None) or ()) > 1:
        model.compile(optimizer=make_optimizer(recipe, steps_per_epoch, keras_api.of(model)))
        return model
    if probabilities is None:
        probabilities = outputs_probabilities(model)
    K = keras_api.of(model)
    loss = K.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
    if recipe.label_smoothing:
        loss = _smoothed_loss(K, recipe.label_smoothing, probabilities)
    model.compile(optimizer=make_optimizer(recipe, steps_per_epoch, K), loss=loss,
                  metrics=[K.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=recipe.jit_compile)
    return model


def make_optimizer(recipe: Recipe, steps_per_epoch: int, K=None):
    """The recipe's optimizer with a (warm-up then) cosine schedule over all steps.

    Args:
      recipe: the :class:`Recipe`.
      steps_per_epoch: training steps per epoch.
      K: the Keras package of the model it trains (None: tf_keras).
    """
    K = keras_api.named("tf_keras") if K is None else K
    total = max(1, int(recipe.epochs * steps_per_epoch))
    warmup = int(recipe.warmup_epochs * steps_per_epoch)
    schedule = K.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else recipe.lr, decay_steps=max(1, total - warmup),
        warmup_target=recipe.lr if warmup else None, warmup_steps=warmup)
    decay = recipe.weight_decay or None
    if recipe.optimizer == "sgd":
        return K.optimizers.SGD(schedule, momentum=recipe.momentum, nesterov=True,
                                weight_decay=decay)
    if recipe.optimizer == "adamw":
        return K.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay)
    return K.optimizers.Adam(schedule, weight_decay=decay)


def _smoothed_loss(K, smoothing: float, probabilities: bool):
    dense = K.losses.CategoricalCrossentropy(from_logits=not probabilities,
                                                    label_smoothing=smoothing)

    def loss(y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        return dense(tf.one_hot(labels, tf.shape(y_pred)[-1]), y_pred)
    return loss


def evaluate(model, dataset, num_classes: int | None = None, output: str = "") -> dict:
    """``{"accuracy": ..., "loss": ...}`` of a compiled ``model`` on ``dataset``.

    A multi-head model is measured on its classifier head (:func:`heads.classifier_output`
    with ``num_classes`` and ``output``, the head's layer name; None and '': the single
    softmax output).
    """
    if len(model.outputs) > 1:
        index = heads.classifier_output(model, num_classes, output, where=f"'{model.name}'")
        view = heads.classifier_view(model, index)
        compile_model(view, Recipe(), 1)
        model = view
    values = model.evaluate(dataset, verbose=0, return_dict=True)
    return {k: float(v) for k, v in values.items()}
