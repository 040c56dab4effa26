"""Equal MACs across two pruning tools: a ratio bisection, and one MAC count read off ``.tflite``.

Two tools count MACs differently (Torch-Pruning's counter adds conv biases,
BatchNorm, ReLU and pooling; ours counts conv and dense weights only), so
:func:`bench.vs_torch_pruning` compares them on the files both wrote:
:func:`tflite_macs` counts one MAC per weight per output position of every
``CONV_2D``, ``DEPTHWISE_CONV_2D`` and ``FULLY_CONNECTED`` op, the
convention of :func:`pipeline.count_macs`, so a Keras model and its
``.tflite`` give the same number. :func:`bisect_ratio` finds the pruning
ratio of a tool that only takes a channel ratio (Torch-Pruning's
``pruning_ratio``) at which that tool's own count shows a MAC fraction removed.

Neither function imports torch or TensorFlow at module level: the bisection
runs in the torch venv, the counter in the project's.

Example:
  >>> result = bisect_ratio(lambda r: (r * r, None), target=0.25)
  >>> abs(result.ratio - 0.5) < 0.01, abs(result.removed - 0.25) <= 0.005
  (True, True)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Bisection:
    """What :func:`bisect_ratio` found.

    Attributes:
      ratio: the tool's ratio whose result came closest to ``target``.
      removed: the fraction removed at ``ratio``, as the measure counted it.
      payload: what the measure returned beside it at ``ratio`` (the pruned model).
      steps: (ratio, removed) of every evaluation, in order.
    """

    ratio: float
    removed: float
    payload: Any
    steps: tuple[tuple[float, float], ...]


def bisect_ratio(measure: Callable[[float], tuple[float, Any]], target: float,
                 tolerance: float = 0.005, low: float = 0.0, high: float = 0.95,
                 scan: int = 10, max_steps: int = 24) -> Bisection:
    """A ratio in [low, high] at which ``measure`` removes ``target`` within ``tolerance``.

    ``measure(ratio)`` prunes a fresh copy and returns (fraction removed, payload).
    The fraction need not grow with the ratio everywhere: with
    ``round_to=32`` Torch-Pruning rounds a thin group's kept count down to 0
    and then leaves the group whole, so past some ratio it removes less. The
    search therefore first scans ``scan`` evenly spaced ratios upward from
    ``low`` to the first that reaches ``target``, then bisects between it and
    the ratio before it. The closest evaluation is kept; the search ends at
    the first one within ``tolerance`` or after ``max_steps`` in all.

    Args:
      measure: ratio -> (fraction removed by the tool's own count, payload).
      target: the fraction to remove, in (0, 1).
      tolerance: accepted absolute distance to ``target`` (0.005 = 1% of 0.5).
      low: a ratio that removes at most ``target`` (0: nothing).
      high: the largest ratio to try.
      scan: ratios of the upward scan (``high`` the last).
      max_steps: evaluations at most, scan included.

    Returns:
      A frozen :class:`Bisection`; its ``removed`` may miss ``tolerance`` when a
      staircase step jumps over it (the caller reports the distance).

    Raises:
      ValueError: ``target`` outside (0, 1), an empty interval, or no scanned
        ratio reaches ``target`` (the tool cannot remove that much).
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target={target} is not a fraction in (0, 1); pass e.g. 0.5")
    if not low < high:
        raise ValueError(f"empty interval low={low} >= high={high}; pass low < high")
    steps = []
    best = None

    def evaluate(ratio: float):
        nonlocal best
        removed, payload = measure(ratio)
        steps.append((ratio, float(removed)))
        if best is None or abs(removed - target) < abs(best[1] - target):
            best = (ratio, float(removed), payload)
        return removed

    def close() -> bool:
        return abs(best[1] - target) <= tolerance

    below = low
    for i in range(1, scan + 1):
        ratio = low + (high - low) * i / scan
        if evaluate(ratio) >= target or close():
            high = ratio
            break
        below = ratio
    else:
        raise ValueError(f"no ratio in ({low}, {high}] removes {target}: the most was "
                         f"{max(r for _, r in steps):.4f} (steps {steps}); lower the target")
    low = below
    while not close() and len(steps) < max_steps:
        middle = (low + high) / 2
        if evaluate(middle) < target:
            low = middle
        else:
            high = middle
    return Bisection(best[0], best[1], best[2], tuple(steps))


def op_macs(output_shape: Sequence[int], weight_shape: Sequence[int],
            depthwise: bool = False) -> int:
    """MACs of one conv, depthwise conv or fully-connected op, batch 1.

    In TFLite's layouts (conv OHWI, depthwise 1HWC, FC (out, in)) every output
    element reads one weight per weight element of its output channel, so the
    count is (output elements / output channels) x weight elements.

    Args:
      output_shape: the op's output tensor shape (channels last).
      weight_shape: its weight tensor shape.
      depthwise: a ``DEPTHWISE_CONV_2D`` (channels on the weight's last axis).

    Raises:
      ValueError: a shape is empty or its channel counts disagree.
    """
    if not output_shape or not weight_shape:
        raise ValueError(f"empty shape: output {list(output_shape)}, weight {list(weight_shape)}")
    channels = int(output_shape[-1])
    leading = int(weight_shape[-1] if depthwise else weight_shape[0])
    if channels != leading:
        raise ValueError(f"output {list(output_shape)} has {channels} channels but weight "
                         f"{list(weight_shape)} makes {leading}; not a conv/FC in TFLite layout")
    return math.prod(int(d) for d in output_shape) // channels * math.prod(
        int(d) for d in weight_shape)


def tflite_macs(path: str) -> dict:
    """MACs of the ``.tflite`` at ``path``: total, per op kind, and any op left uncounted.

    Returns:
      ``{"macs": int, "by_op": {op: int}, "uncounted": [op names]}``; ops that
      carry weights but are not conv/depthwise/FC (BATCH_MATMUL, CONV_3D, ...)
      are listed in ``uncounted`` so a missing count never hides.

    Raises:
      OSError: the file cannot be read.
    """
    from tensorflow.lite.python import schema_py_generated as schema  # project venv only

    ops = {schema.BuiltinOperator.CONV_2D: "CONV_2D",
           schema.BuiltinOperator.DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D",
           schema.BuiltinOperator.FULLY_CONNECTED: "FULLY_CONNECTED"}
    suspect = {getattr(schema.BuiltinOperator, n): n for n in (
        "BATCH_MATMUL", "CONV_3D", "TRANSPOSE_CONV", "CONV_3D_TRANSPOSE")
        if hasattr(schema.BuiltinOperator, n)}
    with open(path, "rb") as f:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(f.read(), 0))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    by_op, uncounted = {}, []
    for graph in model.subgraphs:
        for op in graph.operators:
            code = codes[op.opcodeIndex]
            if code in suspect:
                uncounted.append(suspect[code])
            if code not in ops:
                continue
            out = graph.tensors[int(op.outputs[0])].shape
            weight = graph.tensors[int(op.inputs[1])].shape
            by_op[ops[code]] = by_op.get(ops[code], 0) + op_macs(
                list(out), list(weight), depthwise=ops[code] == "DEPTHWISE_CONV_2D")
    return {"macs": sum(by_op.values()), "by_op": by_op, "uncounted": sorted(set(uncounted))}
