"""Sparsity-aware fine-tuning with TF-MOT: 2:4 and 1x4 block-sparse fully-connected layers.

Two recipes, both a short fine-tune of a *copy* of the model (TF-MOT's
wrappers reuse the layer objects they wrap, so training a wrapped original
would change it in place):

* **2:4** (``prune_low_magnitude(..., sparsity_m_by_n=(2, 4))``): at most 2
  non-zeros in every 4 consecutive weights along the input-channel axis, the
  last axis of TFLite's OHWI conv and (out, in) FC layouts. Eligible: Conv2D
  with ``groups=1`` and Dense, whose input channels are a multiple of 4.
* **1x4 block FC** (``block_size=(4, 1)`` on the Keras (in, out) kernel, which
  TFLite stores as (out, in): blocks of 4 input weights of one output):
  Dense layers with a multiple of 4 inputs, except the classifier (the
  layer producing the model output, kept dense to protect accuracy).

Which layer has which kernel is the handler registry's declaration
(:class:`pipeline.pruning.handlers.SparseKernel`); :func:`eligibility` reads
it. :mod:`pipeline.export.sparse_check` verifies the written file.

Example:
  >>> tuned = finetune_sparse(model, "2of4", SparseRecipe(epochs=1), datasets.train,
  ...                         datasets.steps_per_epoch)
  >>> tuned.skipped  # {"block1_conv1": "1 input channel(s), not a multiple of 4"}
"""
from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow_model_optimization as tfmot
import tf_keras

from pipeline.export.sparse_check import BLOCK, M, N, SparsityError
from pipeline.pruning import graph, handlers
from pipeline.training import distribute
from pipeline.training.distill import outputs_probabilities

# mode -> (whether a SparseKernel takes it, why a layer whose kernel does not is left dense)
_MODES = {
    "2of4": (lambda kernel: kernel.two_of_four,
             "{}: TF-MOT's 2:4 mask supports Conv2D and Dense only"),
    "block_fc": (lambda kernel: kernel.block_1x4,
                 "{}: 1x4 block sparsity is for Dense (FULLY_CONNECTED) only"),
}
MODES = tuple(_MODES)
IMAGE_CHANNELS = (1, 3)  # a model input's channels: not the pruner's to round


@dataclasses.dataclass(frozen=True)
class SparseRecipe:
    """The sparsity-aware fine-tune.

    Attributes:
      epochs: passes of ``steps`` steps (at least 1: TF-MOT applies its masks in
        training steps).
      steps: steps per epoch (0: the data's ``steps_per_epoch``).
      lr: Adam learning rate (small: the weights are already trained).
      block_sparsity: fraction of 1x4 blocks zeroed in block-FC mode.
    """

    epochs: int = 1
    steps: int = 0
    lr: float = 1e-4
    block_sparsity: float = 0.8

    def __post_init__(self):
        if self.epochs < 1 or self.steps < 0 or self.lr <= 0 or not 0 < self.block_sparsity < 1:
            raise SparsityError(f"sparse recipe needs epochs >= 1, steps >= 0, lr > 0 and "
                                f"0 < block_sparsity < 1; got {self}")


@dataclasses.dataclass(frozen=True)
class Ineligible:
    """Why one layer is left dense.

    Attributes:
      layer: the layer's name.
      reason: why the sparsity pattern does not apply to it.
      fix: what makes it eligible, naming the Python argument ("" when
        nothing does: a depthwise conv stays dense).
      argument: that argument's name (``"round_to"``), or None.
    """

    layer: str
    reason: str
    fix: str = ""
    argument: str | None = None


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


def _has_kernel(layer) -> bool:
    return hasattr(layer, "kernel") or hasattr(layer, "depthwise_kernel")


def eligibility(layer, mode: str, output_layers: frozenset = frozenset()) -> Ineligible | None:
    """None if ``layer`` (one with a kernel) can take ``mode``'s sparsity, else why not.

    Args:
      layer: a tf_keras layer.
      mode: ``"2of4"`` or ``"block_fc"``.
      output_layers: names of the layers producing the model's outputs
        (:func:`pipeline.pruning.graph.output_layer_names`); block-FC keeps them dense.

    Returns:
      None, or an :class:`Ineligible` with the reason and, where one exists, the fix.

    Example:
      >>> eligibility(tf_keras.layers.DepthwiseConv2D(3), "2of4").reason
      'depthwise conv: one input channel per filter, nothing to group along'
    """
    applies, unsupported = _MODES[mode]
    kernel = handlers.sparse_kernel(layer)
    if kernel is None or not applies(kernel):
        reason = kernel.reason if kernel is not None and kernel.reason else (
            unsupported.format(type(layer).__name__))
        return Ineligible(layer.name, reason)
    if getattr(layer, "groups", 1) != 1:
        return Ineligible(layer.name, f"grouped conv (groups={layer.groups})")
    inputs = int(getattr(layer, kernel.weight).shape[kernel.in_axis])
    if inputs % N:
        reason = f"{inputs} input channel(s), not a multiple of {N}"
        if inputs in IMAGE_CHANNELS:
            return Ineligible(layer.name, reason)
        return Ineligible(layer.name, reason, f"prune with round_to={N}", "round_to")
    if mode == "block_fc" and layer.name in output_layers:
        return Ineligible(layer.name,
                          "the classifier (model output) is kept dense to protect accuracy")
    return None


def finetune_sparse(model, mode: str, recipe: SparseRecipe, train, steps_per_epoch: int,
                    cluster: distribute.Cluster | None = None) -> SparseModel:
    """Fine-tunes a copy of ``model`` under ``mode``'s sparsity; ``model`` is left as it was.

    Given a ``cluster`` with a ``tf.distribute`` strategy, the copy is built
    and wrapped in the strategy's scope and trained across its replicas; the
    result is a plain (undistributed) model either way.

    Args:
      model: a functional tf_keras classifier (softmax or logits output).
      mode: ``"2of4"`` or ``"block_fc"``.
      recipe: the :class:`SparseRecipe`.
      train: repeating ``(images, labels)`` batches.
      steps_per_epoch: used when ``recipe.steps`` is 0.
      cluster: the :class:`pipeline.training.distribute.Cluster` to train
        under; None trains in this process alone.

    Returns:
      A :class:`SparseModel`; when no layer is eligible (channel counts that
      are not multiples of 4, say), an unchanged copy with ``pruned == ()``.

    Raises:
      SparsityError: unknown mode.
    """
    if mode not in _MODES:
        raise SparsityError(f"sparsity mode must be one of {MODES}, got {mode!r}",
                            argument="mode")
    outputs = graph.output_layer_names(model)
    found = {l.name: eligibility(l, mode, outputs) for l in model.layers if _has_kernel(l)}
    pruned = tuple(name for name, why in found.items() if why is None)
    ineligible = tuple(why for why in found.values() if why is not None)
    if not pruned:  # nothing to fine-tune: a plain copy is returned
        return SparseModel(_plain_copy(model), mode, (), ineligible)
    cluster = cluster if cluster is not None else distribute.Cluster()
    copy = cluster.clone(model)
    with cluster.scope():
        wrapped = tf_keras.models.clone_model(
            copy, clone_function=lambda layer: _wrap(layer, mode, recipe)
            if layer.name in pruned else layer)
        # The masks are computed and applied inside training steps, so at least one must run.
        wrapped.compile(optimizer=tf_keras.optimizers.Adam(recipe.lr),
                        loss=tf_keras.losses.SparseCategoricalCrossentropy(
                            from_logits=not outputs_probabilities(model)), metrics=["accuracy"])
    wrapped.fit(train, epochs=recipe.epochs, steps_per_epoch=recipe.steps or steps_per_epoch,
                verbose=2, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    if cluster.strategy is not None:  # export needs plain variables, not distributed ones
        stripped = _plain_copy(stripped)
    return SparseModel(stripped, mode, pruned, ineligible)


def _plain_copy(model):
    copy = tf_keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _wrap(layer, mode: str, recipe: SparseRecipe):
    prune = tfmot.sparsity.keras.prune_low_magnitude
    if mode == "2of4":
        return prune(layer, sparsity_m_by_n=(M, N))
    # Constant from step 0: a short fine-tune has no room for a gradual schedule.
    schedule = tfmot.sparsity.keras.ConstantSparsity(recipe.block_sparsity, begin_step=0,
                                                     frequency=1)
    return prune(layer, pruning_schedule=schedule, block_size=(BLOCK, 1))
