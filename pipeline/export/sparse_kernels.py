"""Which layers take TFLite's sparse patterns, decided before any training, and their file layout.

Both patterns group a kernel's weights along its input channels, the last
axis of the layouts TFLite stores: OHWI for CONV_2D (a Conv1D becomes a
CONV_2D with filter ``(O, 1, k, I)``; a SeparableConv's pointwise kernel a
1x1 CONV_2D after a DEPTHWISE_CONV_2D; a grouped conv a CONV_2D whose I is
the channels of one group) and ``(out, in)`` for FULLY_CONNECTED.

* **2:4**: at most 2 non-zeros in every 4 consecutive input weights. A layer
  takes it when the handler registry declares its kernel 2:4
  (:class:`pipeline.pruning.handlers.SparseKernel`) and its input channels
  (per group) are a multiple of 4.
* **1x4 block FC** (``"block_fc"``): Dense layers with a multiple of 4
  inputs, except the classifier (the layer producing the model output, kept
  dense to protect accuracy).

:func:`plan` lists, from the model alone, the layers each pattern covers and
why the others are left dense; the fine-tune
(:mod:`pipeline.export.sparse_finetune`) makes the former sparse, and
:func:`file_kernels` says what the file check
(:mod:`pipeline.export.sparse_check`) must then find in the written file.

Example:
  >>> found = plan(model, "2of4")
  >>> found.sparse
  ('block1_conv2', 'sep1', 'fc')
  >>> found.ineligible[0]
  Ineligible(layer='block1_conv1', reason='1 input channel(s), not a multiple of 4', ...)
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.pruning import graph, handlers

M, N = 2, 4  # at most M non-zeros in every N: TFLite's and TF-MOT's 2:4
BLOCK = 4  # TFLite's float block-sparse FULLY_CONNECTED kernel takes 1x4 blocks
IMAGE_CHANNELS = (1, 3)  # a model input's channels: not the pruner's to round

# mode -> (whether a SparseKernel takes it, why a layer whose kernel does not is left dense)
_MODES = {
    "2of4": (lambda kernel: kernel.two_of_four,
             "{}: no 2:4 kernel is declared for this layer class (pipeline.pruning.handlers."
             "SparseKernel)"),
    "block_fc": (lambda kernel: kernel.block_1x4,
                 "{}: 1x4 block sparsity is for Dense (FULLY_CONNECTED) only"),
}
MODES = tuple(_MODES)


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
class SparsePlan:
    """Which layers of a model a sparsity mode covers, known before any training.

    Attributes:
      mode: ``"2of4"`` or ``"block_fc"``.
      sparse: names of the layers it makes sparse, in model order.
      ineligible: the layers with a kernel left dense, and why.
    """

    mode: str
    sparse: tuple[str, ...]
    ineligible: tuple[Ineligible, ...]


def has_kernel(layer) -> bool:
    """Whether ``layer`` holds a conv or fully-connected kernel of any kind."""
    return any(hasattr(layer, name) for name in ("kernel", "depthwise_kernel",
                                                  "pointwise_kernel"))


def eligibility(layer, mode: str, output_layers: frozenset = frozenset()) -> Ineligible | None:
    """None if ``layer`` (one with a kernel) can take ``mode``'s sparsity, else why not.

    Args:
      layer: a built tf_keras layer.
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
    inputs = int(getattr(layer, kernel.weight).shape[kernel.in_axis])  # per group when grouped
    groups = int(getattr(layer, "groups", 1))
    if inputs % N:
        if groups > 1:
            if inputs == 1:
                return Ineligible(layer.name, f"one input channel per group (groups={groups}), "
                                  "nothing to group along")
            return Ineligible(layer.name, f"{inputs} input channel(s) per group (groups="
                              f"{groups}), not a multiple of {N}",
                              f"prune with round_to={N * groups}", "round_to")
        reason = f"{inputs} input channel(s), not a multiple of {N}"
        if inputs in IMAGE_CHANNELS:
            return Ineligible(layer.name, reason)
        return Ineligible(layer.name, reason, f"prune with round_to={N}", "round_to")
    if mode == "block_fc" and layer.name in output_layers:
        return Ineligible(layer.name,
                          "the classifier (model output) is kept dense to protect accuracy")
    return None


def plan(model, mode: str) -> SparsePlan:
    """The layers of ``model`` that ``mode`` makes sparse, and why the others stay dense.

    Reads the model alone (shapes and the handler registry), so it can run
    before any training, as a preflight.

    Args:
      model: a functional tf_keras model.
      mode: ``"2of4"`` or ``"block_fc"`` (see :data:`MODES`).

    Returns:
      A :class:`SparsePlan`.
    """
    outputs = graph.output_layer_names(model)
    found = {l.name: eligibility(l, mode, outputs) for l in model.layers if has_kernel(l)}
    return SparsePlan(mode, tuple(name for name, why in found.items() if why is None),
                      tuple(why for why in found.values() if why is not None))


def kernel_variable(layer):
    """The variable of ``layer``'s declared sparse kernel (a SeparableConv's pointwise one)."""
    return getattr(layer, handlers.sparse_kernel(layer).weight)


def file_layout(layer) -> np.ndarray:
    """``layer``'s sparse kernel as TFLite stores it: output channels first, inputs last.

    Keras kernels hold the output channels on their last axis and the inputs
    on the declared ``in_axis``; TFLite's OHWI and ``(out, in)`` layouts put
    them first and last, keeping the other axes in order. Axes of size 1
    the converter adds (a Conv1D's height) do not change that element order.

    Args:
      layer: a built layer with a 2:4 :class:`~pipeline.pruning.handlers.SparseKernel`.

    Returns:
      The kernel's values, rearranged.
    """
    declared = handlers.sparse_kernel(layer)
    values = np.asarray(getattr(layer, declared.weight).numpy())
    return np.moveaxis(values, [values.ndim - 1, declared.in_axis % values.ndim], [0, -1])


def file_kernels(model, mode: str = "2of4") -> dict[str, np.ndarray]:
    """Layer name -> the kernel the written file must hold, for each layer ``mode`` covers.

    Example:
      >>> sparse_check.check_2of4(path, file_kernels(prepared_model))
    """
    return {name: file_layout(model.get_layer(name)) for name in plan(model, mode).sparse}
