"""Sparsity-aware fine-tuning: 2:4 and 1x4 block-sparse fully-connected layers.

Two recipes, both a short fine-tune of a *copy* of the model (TF-MOT's
wrappers reuse the layer objects they wrap, so training a wrapped original
would change it in place), over the layers
:func:`pipeline.export.sparse_kernels.plan` covers (decided before training):

* **2:4**: at most 2 non-zeros in every 4 consecutive weights along the
  input-channel axis, the last axis of TFLite's OHWI conv and (out, in) FC
  layouts. TF-MOT's ``prune_low_magnitude(..., sparsity_m_by_n=(2, 4))``
  masks rank-2 and rank-4 kernels along their second-to-last (input) axis:
  Dense, Conv2D (grouped too: per group) and SeparableConv2D's pointwise
  kernel. Its mask rejects other ranks, so Conv1D and SeparableConv1D
  kernels (rank 3) get this module's own :func:`mask_callback` instead, a
  callback that re-applies the magnitude 2:4 mask along the input axis
  before training and after every step.
* **1x4 block FC** (``block_size=(4, 1)`` on the Keras (in, out) kernel, which
  TFLite stores as (out, in): blocks of 4 input weights of one output):
  Dense layers with a multiple of 4 inputs, except the classifier.

:mod:`pipeline.export.sparse_check` verifies the written file.

**Keras 3 models** take the same two recipes without TF-MOT, which rejects
Keras 3 models (and a tf_keras twin would mean translating arbitrary Keras 3
configs, ``keras.ops`` operations included, which nothing does): this module's
own masks (:func:`mask_callback`) are re-applied to every covered kernel before
training and after every step, the magnitude 2:4 mask along the input axis, or
the 1x4-block mask zeroing the ``block_sparsity`` share of blocks with the
smallest mean magnitude (TF-MOT's ``ConstantSparsity`` with its default average
block pooling, recomputed every step). The files are verified by the same checks.

Example:
  >>> tuned = finetune_sparse(model, "2of4", SparseRecipe(epochs=1), datasets.train,
  ...                         datasets.steps_per_epoch)
  >>> tuned.skipped  # {"block1_conv1": "1 input channel(s), not a multiple of 4"}
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tf_keras

from pipeline import keras_api
from pipeline.export.sparse_check import SparsityError
from pipeline.export.sparse_kernels import BLOCK, MODES, M, N, Ineligible, kernel_variable, plan
from pipeline.pruning import handlers
from pipeline.training import bn_stats, distribute, heads, traps
from pipeline.training.distill import outputs_probabilities


@dataclasses.dataclass(frozen=True)
class SparseRecipe:
    """The sparsity-aware fine-tune.

    Attributes:
      epochs: passes of ``steps`` steps (at least 1: TF-MOT applies its masks in
        training steps).
      steps: steps per epoch (0: the data's ``steps_per_epoch``).
      lr: Adam learning rate (small: the weights are already trained).
      block_sparsity: fraction of 1x4 blocks zeroed in block-FC mode.
      bn_batches: training batches the BatchNorm statistics are re-estimated on
        after the fine-tune (0: not re-estimated). Zeroing 80% of a Dense
        layer's blocks moved the quick run's model from 87.2% to 41.4% with
        stale statistics and back to 84.7% re-estimated (BENCHMARKS.md,
        "BatchNorm re-estimation").
    """

    epochs: int = 1
    steps: int = 0
    lr: float = 1e-4
    block_sparsity: float = 0.8
    bn_batches: int = 50

    def __post_init__(self):
        if (self.epochs < 1 or self.steps < 0 or self.lr <= 0 or not 0 < self.block_sparsity < 1
                or self.bn_batches < 0):
            raise SparsityError(f"sparse recipe needs epochs >= 1, steps >= 0, lr > 0, "
                                f"0 < block_sparsity < 1 and bn_batches >= 0; got {self}")


@dataclasses.dataclass(frozen=True)
class SparseModel:
    """What :func:`finetune_sparse` made.

    Attributes:
      model: the fine-tuned copy, wrappers stripped, masked weights exactly zero.
      mode: ``"2of4"`` or ``"block_fc"``.
      pruned: names of the layers made sparse.
      ineligible: the layers with a kernel left dense, and why.
    """

    model: Any
    mode: str
    pruned: tuple[str, ...]
    ineligible: tuple[Ineligible, ...]

    @property
    def skipped(self) -> dict[str, str]:
        """Layer name -> why it was left dense."""
        return {i.layer: i.reason for i in self.ineligible}


def finetune_sparse(model, mode: str, recipe: SparseRecipe, train, steps_per_epoch: int,
                    cluster: distribute.Cluster | None = None,
                    classifier: str = "") -> SparseModel:
    """Fine-tunes a copy of ``model`` under ``mode``'s sparsity; ``model`` is left as it was.

    Given a ``cluster`` with a ``tf.distribute`` strategy, the copy is built
    and wrapped in the strategy's scope and trained across its replicas; the
    result is a plain (undistributed) model either way.

    Args:
      model: a functional tf_keras or Keras 3 classifier (softmax or logits output).
      mode: ``"2of4"`` or ``"block_fc"``.
      recipe: the :class:`SparseRecipe`.
      train: repeating ``(images, labels)`` batches.
      steps_per_epoch: used when ``recipe.steps`` is 0.
      cluster: the :class:`pipeline.training.distribute.Cluster` to train
        under; None trains in this process alone.
      classifier: a multi-head ``model``'s classifier output (its layer name; ''
        = its single softmax output): trained on the labels through a
        :class:`pipeline.training.heads.HeadsTrainer`, every other head held to
        ``model``'s own outputs (mean squared error).

    Returns:
      A :class:`SparseModel`; when no layer is eligible (channel counts that
      are not multiples of 4, say), an unchanged copy with ``pruned == ()``.

    Raises:
      SparsityError: unknown mode.
      OneDnnTrapError: the model holds a layer oneDNN cannot train, and oneDNN
        is on (:mod:`pipeline.training.traps`).
    """
    if mode not in MODES:
        raise SparsityError(f"sparsity mode must be one of {MODES}, got {mode!r}",
                            argument="mode")
    found = plan(model, mode)
    if not found.sparse:  # nothing to fine-tune: a plain copy is returned
        return SparseModel(keras_api.copy_model(model), mode, (), found.ineligible)
    traps.check(model, f"the model '{model.name}' ({mode} fine-tune)")
    cluster = cluster if cluster is not None else distribute.Cluster()
    copy = cluster.clone(model)
    if keras_api.is_keras3(model):
        return _finetune_own_masks(copy, model, found, recipe, train,
                                   recipe.steps or steps_per_epoch, cluster, classifier)
    import tensorflow_model_optimization as tfmot  # noqa: PLC0415  (tf_keras only)

    own = tuple(name for name in found.sparse
                if mode == "2of4" and not tfmot_masks(copy.get_layer(name)))
    with cluster.scope():
        wrapped = tf_keras.models.clone_model(
            copy, clone_function=lambda layer: _wrap(layer, mode, recipe)
            if layer.name in found.sparse and layer.name not in own else layer)
        trainee = _trainee(wrapped, model, classifier, cluster)
        # The masks are computed and applied inside training steps, so at least one must run.
        if trainee is wrapped:
            wrapped.compile(optimizer=tf_keras.optimizers.Adam(recipe.lr),
                            loss=tf_keras.losses.SparseCategoricalCrossentropy(
                                from_logits=not outputs_probabilities(model)),
                            metrics=["accuracy"])
        else:  # the trainer computes its own loss
            trainee.compile(optimizer=tf_keras.optimizers.Adam(recipe.lr), metrics=["accuracy"])
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    if own:
        callbacks.append(mask_callback([wrapped.get_layer(name) for name in own], mode))
    trainee.fit(train, epochs=recipe.epochs, steps_per_epoch=recipe.steps or steps_per_epoch,
                verbose=2, callbacks=callbacks)
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    if cluster.strategy is not None:  # export needs plain variables, not distributed ones
        stripped = keras_api.copy_model(stripped)
    # The zeroed weights change what every BatchNorm after them sees.
    bn_stats.reestimate(stripped, train, recipe.bn_batches)
    return SparseModel(stripped, mode, found.sparse, found.ineligible)


def _finetune_own_masks(copy, source, found, recipe: SparseRecipe, train, steps: int, cluster,
                        classifier: str) -> SparseModel:
    """The Keras 3 fine-tune: ``copy`` trained in place under :func:`mask_callback`."""
    K = keras_api.of(copy)
    with cluster.scope():
        trainee = _trainee(copy, source, classifier, cluster)
        loss = (K.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(
            source)) if trainee is copy else None)  # a heads trainer computes its own
        trainee.compile(optimizer=K.optimizers.Adam(recipe.lr), loss=loss, metrics=["accuracy"])
    masks = mask_callback([copy.get_layer(name) for name in found.sparse], found.mode,
                          recipe.block_sparsity)
    trainee.fit(train, epochs=recipe.epochs, steps_per_epoch=steps, verbose=2, callbacks=[masks])
    tuned = keras_api.copy_model(copy) if cluster.strategy is not None else copy
    bn_stats.reestimate(tuned, train, recipe.bn_batches)
    return SparseModel(tuned, found.mode, found.sparse, found.ineligible)


def _trainee(wrapped, source, classifier: str, cluster):
    """``wrapped`` itself (one output), or its :class:`heads.HeadsTrainer` against ``source``.

    TF-MOT's ``UpdatePruningStep`` finds the wrapped layers inside the trainer
    (it searches nested models); the teacher is the unwrapped source.
    """
    if len(wrapped.outputs) == 1:
        return wrapped
    # Found on the source: a wrapped output layer is renamed prune_low_magnitude_<name>.
    index = heads.classifier_output(source, None, classifier, where=f"'{source.name}'")
    probabilities = heads.ends_in_softmax(heads.output_layer(source, index))
    return heads.make_trainer(wrapped, cluster.replicate(source), index, probabilities)


def tfmot_masks(layer) -> bool:
    """Whether TF-MOT's 2:4 mask groups ``layer``'s sparse kernel along its input axis.

    TF-MOT (``pruning_utils.weights_rearrange``) groups a rank-2 kernel along
    axis 0 and a rank-4 one along axis 2 (Keras' input axes of Dense and
    Conv2D), and rejects every other rank; it masks the weight its
    ``PruneRegistry`` names, which must be the declared kernel.
    """
    declared = handlers.sparse_kernel(layer)
    rank = len(kernel_variable(layer).shape)
    return rank in (2, 4) and declared.in_axis % rank == rank - 2 and declared.weight in (
        "kernel", "pointwise_kernel")


def two_of_four_mask(values: np.ndarray, in_axis: int) -> np.ndarray:
    """The magnitude 2:4 mask of ``values``: the 2 largest of every 4 along ``in_axis`` kept.

    Args:
      values: a kernel whose ``in_axis`` is a multiple of 4 long.
      in_axis: the axis the groups of 4 run along.

    Returns:
      A 0/1 array shaped like ``values`` (ties keep the earlier weight).
    """
    moved = np.moveaxis(np.asarray(values), in_axis, -1)
    groups = np.abs(moved).reshape(-1, N)
    dropped = np.argsort(groups, axis=1, kind="stable")[:, :N - M]
    mask = np.ones(groups.shape, dtype=moved.dtype)
    np.put_along_axis(mask, dropped, 0, axis=1)
    return np.moveaxis(mask.reshape(moved.shape), -1, in_axis)


def block_mask(values: np.ndarray, sparsity: float) -> np.ndarray:
    """The 1x4-block magnitude mask of a Keras ``(in, out)`` Dense kernel.

    Blocks are 4 consecutive inputs of one output (TFLite's ``(out, in)``
    layout stores them side by side); the ``sparsity`` share of them with the
    smallest mean magnitude is zeroed (ties: the earlier block).

    Args:
      values: a rank-2 kernel whose input axis (0) is a multiple of 4 long.
      sparsity: the fraction of blocks to zero, in (0, 1).

    Returns:
      A 0/1 array shaped like ``values``.
    """
    values = np.asarray(values)
    inputs, outputs = values.shape
    magnitude = np.abs(values).reshape(inputs // BLOCK, BLOCK, outputs).mean(axis=1)
    dropped = np.argsort(magnitude, axis=None, kind="stable")[:int(round(sparsity
                                                                         * magnitude.size))]
    keep = np.ones(magnitude.size, dtype=values.dtype)
    keep[dropped] = 0
    return np.repeat(keep.reshape(magnitude.shape), BLOCK, axis=0)


def mask_callback(layers, mode: str = "2of4", block_sparsity: float = 0.8):
    """A ``fit`` callback (of the layers' Keras) keeping their declared kernels sparse.

    The magnitude mask of ``mode`` (:func:`two_of_four_mask` along the declared
    input axis, or :func:`block_mask`) is recomputed and applied before
    training and after every step, so the forward passes see sparse weights
    and training ends on them. Used for every covered kernel of a Keras 3 model,
    and for the tf_keras kernels TF-MOT's 2:4 mask cannot group along the
    input axis (rank 3: Conv1D, SeparableConv1D's pointwise kernel).

    Args:
      layers: built layers with a :class:`pipeline.pruning.handlers.SparseKernel`.
      mode: ``"2of4"`` or ``"block_fc"``.
      block_sparsity: the share of 1x4 blocks zeroed in ``block_fc`` mode.
    """
    kernels = [(kernel_variable(l), handlers.sparse_kernel(l).in_axis) for l in layers]

    def apply():
        for variable, in_axis in kernels:
            values = variable.numpy()
            mask = (two_of_four_mask(values, in_axis) if mode == "2of4"
                    else block_mask(values, block_sparsity))
            variable.assign(values * mask)

    class SparseMasks(keras_api.of(layers[0]).callbacks.Callback):
        def on_train_begin(self, logs=None):
            apply()

        def on_train_batch_end(self, batch, logs=None):
            apply()

    return SparseMasks()


def _wrap(layer, mode: str, recipe: SparseRecipe):
    import tensorflow_model_optimization as tfmot  # noqa: PLC0415  (tf_keras only)

    prune = tfmot.sparsity.keras.prune_low_magnitude
    if mode == "2of4":
        return prune(layer, sparsity_m_by_n=(M, N))
    # Constant from step 0: a short fine-tune has no room for a gradual schedule.
    schedule = tfmot.sparsity.keras.ConstantSparsity(recipe.block_sparsity, begin_step=0,
                                                     frequency=1)
    return prune(layer, pruning_schedule=schedule, block_size=(BLOCK, 1))
