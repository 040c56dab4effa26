"""Sparsity-aware fine-tuning (2:4 and 1x4 block FC) with TF-MOT, and the checks on the written file.

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

:func:`check_2of4` and :func:`check_block_fc` read the written ``.tflite``
(:mod:`pipeline.export.flatbuffer`), so they verify the file that ships.

Example:
  >>> tuned = finetune_sparse(model, "2of4", SparseRecipe(epochs=1), datasets.train,
  ...                         datasets.steps_per_epoch)
  >>> tuned.skipped  # {"block1_conv1": "1 input channel(s), not a multiple of 4"}
  >>> check_2of4("tflite/pruned_2of4.tflite").eligible
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras

from pipeline.training import distribute
from pipeline.export import flatbuffer as tflite_weights
from pipeline.training.distill import outputs_probabilities
from pipeline.errors import PruningError

MODES = ("2of4", "block_fc")
M, N = 2, 4  # at most M non-zeros in every N: TFLite's and TF-MOT's 2:4
BLOCK = 4  # TFLite's float block-sparse FULLY_CONNECTED kernel takes 1x4 blocks


class SparsityError(PruningError):
    """Sparse fine-tuning cannot run, or a written file breaks its sparsity pattern."""


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
class SparseModel:
    """What :func:`finetune_sparse` made.

    Attributes:
      model: the fine-tuned copy, wrappers stripped, masked weights exactly zero.
      mode: ``"2of4"`` or ``"block_fc"``.
      pruned: names of the layers made sparse.
      skipped: layer name -> why it was not eligible (layers with a kernel only).
    """

    model: Any
    mode: str
    pruned: tuple[str, ...]
    skipped: dict


def _has_kernel(layer) -> bool:
    return hasattr(layer, "kernel") or hasattr(layer, "depthwise_kernel")


def eligibility(layer, mode: str, output_layers: frozenset = frozenset()) -> str | None:
    """None if ``layer`` (one with a kernel) can take ``mode``'s sparsity, else why not."""
    if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
        return "depthwise conv: one input channel per filter, nothing to group along"
    if mode == "block_fc" and not isinstance(layer, tf_keras.layers.Dense):
        return f"{type(layer).__name__}: 1x4 block sparsity is for Dense (FULLY_CONNECTED) only"
    if not isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)) or isinstance(
            layer, (tf_keras.layers.SeparableConv2D, tf_keras.layers.Conv2DTranspose)):
        return f"{type(layer).__name__}: TF-MOT's 2:4 mask supports Conv2D and Dense only"
    if getattr(layer, "groups", 1) != 1:
        return f"grouped conv (groups={layer.groups})"
    inputs = int(layer.kernel.shape[-2])
    if inputs % N:
        return f"{inputs} input channel(s), not a multiple of {N}"
    if mode == "block_fc" and layer.name in output_layers:
        return "the classifier (model output) is kept dense to protect accuracy"
    return None


def finetune_sparse(model, mode: str, recipe: SparseRecipe, train, steps_per_epoch: int,
                    ) -> SparseModel:
    """Fine-tunes a copy of ``model`` under ``mode``'s sparsity; ``model`` is left as it was.

    Under a ``tf.distribute`` strategy (:func:`pipeline.training.distribute.active`)
    the copy is built and wrapped in the strategy's scope and trained across
    its replicas; the result is a plain (undistributed) model either way.

    Args:
      model: a functional tf_keras classifier (softmax or logits output).
      mode: ``"2of4"`` or ``"block_fc"``.
      recipe: the :class:`SparseRecipe`.
      train: repeating ``(images, labels)`` batches.
      steps_per_epoch: used when ``recipe.steps`` is 0.

    Returns:
      A :class:`SparseModel`; when no layer is eligible (channel counts that
      are not multiples of 4, say), an unchanged copy with ``pruned == ()``.

    Raises:
      SparsityError: unknown mode.
    """
    if mode not in MODES:
        raise SparsityError(f"sparsity mode must be one of {MODES}, got {mode!r}")
    outputs = frozenset(t._keras_history.layer.name for t in model.outputs)  # noqa: SLF001
    candidates = [l for l in model.layers if _has_kernel(l)]
    skipped = {l.name: eligibility(l, mode, outputs) for l in candidates}
    pruned = tuple(name for name, reason in skipped.items() if reason is None)
    skipped = {name: reason for name, reason in skipped.items() if reason is not None}
    if not pruned:  # nothing to fine-tune: a plain copy is returned
        return SparseModel(_plain_copy(model), mode, (), skipped)
    cluster = distribute.current()  # the fine-tune runs under the pipeline's strategy
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
    return SparseModel(stripped, mode, pruned, skipped)


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


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """What a check of a written ``.tflite`` found.

    Attributes:
      eligible: tensor name -> fraction of zeros, for kernels that pass.
      not_eligible: tensor name -> why the pattern does not apply to it.
    """

    eligible: dict
    not_eligible: dict

    def summary(self) -> str:
        reasons = "; ".join(f"{short_name(k)}: {v}" for k, v in self.not_eligible.items())
        return (f"{len(self.eligible)} kernels checked in the file"
                + (f"; not eligible: {reasons}" if reasons else ""))


def check_2of4(path: str) -> FileCheck:
    """Checks that every eligible kernel in the written file has <= 2 non-zeros per 4 inputs.

    Eligible: CONV_2D and FULLY_CONNECTED weights whose input-channel axis (the
    last) is a multiple of 4; groups of 4 are consecutive along that axis.

    Raises:
      SparsityError: a kernel breaks the pattern; the message names it and
        counts the offending groups.
    """
    eligible, not_eligible, bad = {}, {}, []
    for kernel in tflite_weights.read_kernels(path):
        values, inputs = kernel.values, kernel.values.shape[-1]
        if kernel.op == "DEPTHWISE_CONV_2D":
            not_eligible[kernel.name] = "depthwise conv"
            continue
        if inputs % N:
            not_eligible[kernel.name] = f"{inputs} input channel(s), not a multiple of {N}"
            continue
        groups = (values.reshape(-1, N) != 0).sum(axis=1)
        if (groups > M).any():
            bad.append(f"{kernel.name}: {(groups > M).sum()} of {groups.size} groups of {N} "
                       f"hold more than {M} non-zeros")
        eligible[kernel.name] = float(np.mean(values == 0))
    if bad:
        raise SparsityError(f"{path} breaks 2:4 sparsity: " + "; ".join(bad))
    return FileCheck(eligible, not_eligible)


def check_block_fc(path: str, min_sparsity: float = 0.5, require: bool = True) -> FileCheck:
    """Checks that FULLY_CONNECTED kernels with zero blocks are stored 1x4 block-sparse.

    Only block-sparse storage selects TFLite's block-sparse FC kernel, so a
    kernel that is zero in blocks but stored dense (or random-sparse) would
    run the dense kernel. Kernels with a multiple of 4 inputs and at least
    ``min_sparsity`` zero blocks must be stored as ``block 1x4``, and with
    ``require`` at least one kernel must be.

    Raises:
      SparsityError: a sparse-enough kernel is stored otherwise, or (with
        ``require``) no kernel is block-sparse.
    """
    eligible, not_eligible, bad = {}, {}, []
    for kernel in tflite_weights.read_kernels(path):
        values = kernel.values
        if kernel.op != "FULLY_CONNECTED":
            continue
        if values.shape[-1] % BLOCK:
            not_eligible[kernel.name] = f"{values.shape[-1]} inputs, not a multiple of {BLOCK}"
            continue
        zero_blocks = float(np.mean(~values.reshape(-1, BLOCK).any(axis=1)))
        if kernel.sparse_format == f"block 1x{BLOCK}":
            eligible[kernel.name] = zero_blocks
        elif zero_blocks >= min_sparsity:
            bad.append(f"{kernel.name}: {zero_blocks:.0%} zero blocks but stored "
                       f"{kernel.sparse_format or 'dense'}")
        else:
            not_eligible[kernel.name] = f"dense ({zero_blocks:.0%} zero blocks)"
    if bad or (require and not eligible):
        raise SparsityError(f"{path}: no 1x{BLOCK} block-sparse FULLY_CONNECTED kernel"
                            + (": " + "; ".join(bad) if bad else ""))
    return FileCheck(eligible, not_eligible)


def short_name(name: str) -> str:
    """The Keras layer in a TFLite tensor name: 'm/re_lu/Relu;m/c2/Conv2D' -> 'c2'."""
    for piece in name.split(";"):
        parts = [p for p in piece.split("/") if p]
        if len(parts) >= 2 and parts[-1] in ("Conv2D", "MatMul", "depthwise", "Conv2D1"):
            return parts[-2]
    parts = [p for p in name.split(";")[0].split("/") if p]
    if "batchnorm" in parts[1:]:  # a kernel with its BatchNorm folded in is named after it
        return parts[parts.index("batchnorm") - 1]
    return parts[-2] if len(parts) >= 2 else name
