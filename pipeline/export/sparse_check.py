"""Checks that a written ``.tflite`` holds the sparsity patterns TFLite's fast kernels need.

* :func:`check_2of4`: every kernel the pipeline made 2:4 is found in the
  file, at most 2 non-zeros in every 4 consecutive inputs;
* :func:`check_block_fc`: FULLY_CONNECTED kernels with zero blocks are
  stored 1x4 block-sparse, which is what selects TFLite's block-sparse kernel.

Both read the file (:mod:`pipeline.export.flatbuffer`), so they verify what
ships, not the Keras model it came from. Which kernels must be 2:4 comes
from the model (:func:`pipeline.export.sparse_kernels.file_kernels`): the
file's tensor names are no guide (a kernel with its BatchNorm folded in is
named after the BN, a Conv1D's after its ExpandDims), so each kernel is
located by its shape and its zeros. The fine-tune that makes these patterns
is :mod:`pipeline.export.sparse_finetune`.

Example:
  >>> check_2of4("tflite/pruned_2of4.tflite", sparse_kernels.file_kernels(model)).summary()
  '7 kernels checked in the file; not eligible: rgb_to_gray: not made 2:4, ...'
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from pipeline.errors import PruningError
from pipeline.export import flatbuffer as tflite_weights
from pipeline.export import sparse_kernels
from pipeline.export.sparse_kernels import BLOCK, M, N

_WEIGHTED_OPS = ("CONV_2D", "FULLY_CONNECTED")  # the ops whose kernels can hold 2:4


class SparsityError(PruningError):
    """Sparse fine-tuning cannot run, or a written file breaks its sparsity pattern."""


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """What a check of a written ``.tflite`` found.

    Attributes:
      eligible: name -> fraction of zeros, for kernels that pass (the Keras
        layer's name when the check was told what to expect).
      not_eligible: tensor name -> why the pattern does not apply to it.
    """

    eligible: dict
    not_eligible: dict

    def summary(self) -> str:
        reasons = "; ".join(f"{short_name(k)}: {v}" for k, v in self.not_eligible.items())
        return (f"{len(self.eligible)} kernels checked in the file"
                + (f"; not eligible: {reasons}" if reasons else ""))


def overfull_groups(values: np.ndarray) -> tuple[int, int]:
    """(groups of 4 along the last axis with more than 2 non-zeros, all groups)."""
    counts = (values.reshape(-1, N) != 0).sum(axis=1)
    return int((counts > M).sum()), int(counts.size)


def check_2of4(path: str, expected: Mapping[str, np.ndarray] | None = None) -> FileCheck:
    """Checks that the kernels meant 2:4 hold <= 2 non-zeros per 4 inputs in the written file.

    Args:
      path: the ``.tflite`` file.
      expected: Keras layer name -> its kernel in TFLite's layout
        (:func:`pipeline.export.sparse_kernels.file_kernels`), the kernels
        the pipeline meant to write 2:4. Each is located among the file's
        CONV_2D and FULLY_CONNECTED kernels by its shape and zeros (folding a
        BatchNorm in scales a kernel but keeps its zeros); every other kernel
        is left alone. None (the file alone): the kernels the file stores
        sparse are taken as the ones meant 2:4.

    Returns:
      A :class:`FileCheck`.

    Raises:
      SparsityError: an expected kernel is missing from the file or breaks
        the pattern; the message names its layer and counts the offending groups.
    """
    kernels = [k for k in tflite_weights.read_kernels(path) if k.op in _WEIGHTED_OPS]
    if expected is None:
        return _check_stored_sparse(path, kernels)
    eligible, bad, used = {}, [], set()
    for layer, want in expected.items():
        index = _locate(want, kernels, used)
        if index is None:
            bad.append(f"{layer}: no kernel of shape {_squeezed(want.shape)} in the file holds "
                       f"its zeros ({np.mean(want == 0):.0%} of its weights)")
            continue
        used.add(index)
        over, total = overfull_groups(kernels[index].values)
        if over:
            bad.append(f"{layer}: {over} of {total} groups of {N} hold more than {M} non-zeros")
        eligible[layer] = float(np.mean(kernels[index].values == 0))
    if bad:
        raise SparsityError(f"{path} breaks 2:4 sparsity: " + "; ".join(bad))
    not_eligible = {k.name: "not made 2:4" for i, k in enumerate(kernels) if i not in used}
    return FileCheck(eligible, not_eligible)


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape if d != 1)


def _locate(want: np.ndarray, kernels, used: set) -> int | None:
    """The index of the unused file kernel shaped like ``want`` holding all of its zeros."""
    zeros = want == 0
    for i, kernel in enumerate(kernels):
        if i in used or _squeezed(kernel.values.shape) != _squeezed(want.shape):
            continue
        if not np.any((kernel.values.reshape(want.shape) != 0) & zeros):
            return i
    return None


def _check_stored_sparse(path: str, kernels) -> FileCheck:
    eligible, not_eligible, bad = {}, {}, []
    for kernel in kernels:
        inputs = kernel.values.shape[-1]
        if not kernel.sparse_format:
            not_eligible[kernel.name] = "stored dense"
        elif inputs % N:
            not_eligible[kernel.name] = f"{inputs} input channel(s), not a multiple of {N}"
        else:
            over, total = overfull_groups(kernel.values)
            if over:
                bad.append(f"{short_name(kernel.name)}: {over} of {total} groups of {N} hold "
                           f"more than {M} non-zeros")
            eligible[kernel.name] = float(np.mean(kernel.values == 0))
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

    Args:
      path: the ``.tflite`` file.
      min_sparsity: the fraction of zero blocks from which a kernel must be
        stored block-sparse.
      require: fail when no kernel is block-sparse.

    Returns:
      A :class:`FileCheck`.

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


def verify_2of4(path: str, model) -> str:
    """:func:`check_2of4` on a file converted from ``model``, and a note saying what it found.

    Args:
      path: the ``.tflite`` file.
      model: the Keras model it was converted from (fine-tuned 2:4): the
        layers :func:`pipeline.export.sparse_kernels.plan` covers must be 2:4
        in the file; when it covers none, nothing is expected.

    Returns:
      The note for the report.

    Raises:
      SparsityError: see :func:`check_2of4`.
    """
    found = check_2of4(path, sparse_kernels.file_kernels(model))
    if not found.eligible:
        return "2:4 verified in the file: no layer was meant 2:4, none checked"
    zeros = np.mean(list(found.eligible.values()))
    return (f"2:4 verified in the file: {len(found.eligible)} kernel(s) 2:4 "
            f"({', '.join(found.eligible)}; {zeros:.0%} zeros); {len(found.not_eligible)} other "
            "conv/FC kernel(s) not made 2:4")


def verify_block_fc(path: str, sparse_layers) -> str:
    """:func:`check_block_fc` on a file fine-tuned 1x4 block-sparse, and a note.

    Args:
      path: the ``.tflite`` file.
      sparse_layers: the Keras layers the fine-tune made block-sparse; when
        there are none, the file need not hold a block-sparse kernel.

    Returns:
      The note for the report.

    Raises:
      SparsityError: see :func:`check_block_fc`.
    """
    found = check_block_fc(path, require=bool(sparse_layers))
    blocks = ", ".join(f"{short_name(k)} {v:.0%} zero blocks" for k, v in found.eligible.items())
    dense = "; ".join(f"{short_name(k)}: {v}" for k, v in found.not_eligible.items())
    return (f"1x4 block-sparse FULLY_CONNECTED verified in the file: {blocks or 'none'}"
            + (f"; dense: {dense}" if dense else ""))


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
