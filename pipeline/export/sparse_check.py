"""Checks that a written ``.tflite`` holds the sparsity patterns TFLite's fast kernels need.

* :func:`check_2of4`: every eligible CONV_2D and FULLY_CONNECTED kernel has
  at most 2 non-zeros in every 4 consecutive inputs;
* :func:`check_block_fc`: FULLY_CONNECTED kernels with zero blocks are
  stored 1x4 block-sparse, which is what selects TFLite's block-sparse kernel.

Both read the file (:mod:`pipeline.export.flatbuffer`), so they verify what
ships, not the Keras model it came from. The fine-tune that makes these
patterns is :mod:`pipeline.export.sparse_finetune`.

Example:
  >>> check_2of4("tflite/pruned_2of4.tflite").summary()
  '7 kernels checked in the file; not eligible: block1_conv1: 1 input channel(s), ...'
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.errors import PruningError
from pipeline.export import flatbuffer as tflite_weights

M, N = 2, 4  # at most M non-zeros in every N: TFLite's and TF-MOT's 2:4
BLOCK = 4  # TFLite's float block-sparse FULLY_CONNECTED kernel takes 1x4 blocks


class SparsityError(PruningError):
    """Sparse fine-tuning cannot run, or a written file breaks its sparsity pattern."""


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

    Args:
      path: the ``.tflite`` file.

    Returns:
      A :class:`FileCheck`.

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


def verify_2of4(path: str, sparse_layers) -> str:
    """:func:`check_2of4` on a file fine-tuned 2:4, and a note saying what it found.

    Args:
      path: the ``.tflite`` file.
      sparse_layers: the Keras layers the fine-tune made 2:4.

    Returns:
      The note for the report.

    Raises:
      SparsityError: the pattern is broken, or fewer kernels are eligible
        than layers were fine-tuned.
    """
    found = check_2of4(path)
    # Counted, not matched by name: a kernel with a BatchNorm folded in is named after the BN.
    if len(found.eligible) < len(sparse_layers):
        raise SparsityError(
            f"{path}: {len(sparse_layers)} layers were fine-tuned 2:4 "
            f"({', '.join(sparse_layers)}) but only {len(found.eligible)} kernels of "
            "the file are eligible for the check")
    zeros = f"; eligible kernels {np.mean(list(found.eligible.values())):.0%} zeros" if (
        found.eligible) else ""
    return f"2:4 verified in the file: {found.summary()}{zeros}"


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
