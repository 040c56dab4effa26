"""The weight kernels of a written ``.tflite`` file, read from its flatbuffer, densified.

The checks in :mod:`pipeline.export.sparse_check` must look at what was written, not at
the Keras model it came from, so this module parses the file with the TFLite
flatbuffer schema (``tensorflow.lite.python.schema_py_generated``) and
rebuilds each weight tensor as a dense numpy array. Weights stored sparse by
``Optimize.EXPERIMENTAL_SPARSITY`` (``SparsityParameters``: a traversal
order, an optional block map and per-level DENSE / SPARSE_CSR metadata) are
densified with the algorithm of TFLite's ``FormatConverter::SparseToDense``.
A conv's sparse constant reaches the conv through a ``DENSIFY`` op; a sparse
FULLY_CONNECTED reads it directly; float16 weights (``pruned_fp16``) go
through a ``DEQUANTIZE`` op, and the kernel returned is the float16 constant.

Example:
  >>> for kernel in read_kernels("work/tflite/pruned_2of4.tflite"):
  ...     print(kernel.op, kernel.name, kernel.values.shape, kernel.sparse_format)
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from pipeline.errors import PruningError

_OPS = {schema.BuiltinOperator.CONV_2D: "CONV_2D",
        schema.BuiltinOperator.FULLY_CONNECTED: "FULLY_CONNECTED",
        schema.BuiltinOperator.DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D"}
# Ops between a stored constant and the op that reads it: DENSIFY (a sparse constant),
# DEQUANTIZE (float16 weights, which the CPU turns into float32 once at load).
_WEIGHT_STEPS = (schema.BuiltinOperator.DENSIFY, schema.BuiltinOperator.DEQUANTIZE)
_DTYPES = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
           schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
           schema.TensorType.INT32: np.int32}


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One weight tensor of a conv or fully-connected op, dense.

    Attributes:
      op: ``CONV_2D``, ``FULLY_CONNECTED`` or ``DEPTHWISE_CONV_2D``.
      name: the tensor's name in the file (holds the Keras layer's name).
      values: the dense weights in TFLite layout: OHWI (conv), (out, in) (FC),
        1HWC (depthwise); the input-channel axis is the last one.
      sparse_format: ``""`` when stored dense, else ``"random"`` or
        ``"block 1x4"``-style (how ``SparsityParameters`` store it).
    """

    op: str
    name: str
    values: np.ndarray
    sparse_format: str = ""


def read_kernels(path: str) -> list[Kernel]:
    """The dense weights of every conv/FC op in the ``.tflite`` at ``path``, in op order.

    Raises:
      PruningError: the file cannot be read or parsed, or a tensor type is unknown.
    """
    try:
        with open(path, "rb") as f:
            model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(f.read(), 0))
    except (OSError, ValueError, IndexError) as e:
        raise PruningError(f"cannot parse the TFLite flatbuffer {path}: {e}") from e
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    kernels = []
    for graph in model.subgraphs:
        producer = {int(t): op for op in graph.operators for t in op.outputs}
        for op in graph.operators:
            code = codes[op.opcodeIndex]
            if code not in _OPS or len(op.inputs) < 2:
                continue
            index = int(op.inputs[1])
            source = producer.get(index)
            while source is not None and codes[source.opcodeIndex] in _WEIGHT_STEPS:
                index = int(source.inputs[0])
                source = producer.get(index)
            tensor = graph.tensors[index]
            kernels.append(Kernel(_OPS[code], _name(tensor), _dense(model, tensor, path),
                                  _format(tensor)))
    return kernels


def _name(tensor) -> str:
    name = tensor.name
    return name.decode() if isinstance(name, bytes) else str(name)


def _dense(model, tensor, path: str) -> np.ndarray:
    if tensor.type not in _DTYPES:
        raise PruningError(f"{path}: tensor '{_name(tensor)}' has TFLite type {tensor.type}, "
                           "which this reader does not decode")
    raw = model.buffers[tensor.buffer].data
    if raw is None:
        raise PruningError(f"{path}: tensor '{_name(tensor)}' is not a constant")
    flat = np.frombuffer(bytes(bytearray(raw)), dtype=_DTYPES[tensor.type])
    shape = [int(d) for d in tensor.shape]
    if tensor.sparsity is None:
        return flat.reshape(shape)
    return _sparse_to_dense(flat, shape, tensor.sparsity)


def _format(tensor) -> str:
    sparsity = tensor.sparsity
    if sparsity is None:
        return ""
    if sparsity.blockMap is None or len(sparsity.blockMap) == 0:
        return "random"
    rank = len(tensor.shape)
    levels = sparsity.dimMetadata
    block = [1] * rank
    for i, dim in enumerate(sparsity.blockMap):
        block[int(dim)] = int(levels[rank + i].denseSize)
    return "block " + "x".join(str(b) for b in block)


def _sparse_to_dense(values: np.ndarray, shape: list[int], sparsity) -> np.ndarray:
    """TFLite's ``FormatConverter::SparseToDense``, recursive over the traversal levels."""
    rank = len(shape)
    order = [int(d) for d in sparsity.traversalOrder]
    block_map = [] if sparsity.blockMap is None else [int(d) for d in sparsity.blockMap]
    levels = sparsity.dimMetadata
    block_size = [int(levels[rank + i].denseSize) for i in range(len(block_map))]
    for dim, size in zip(block_map, block_size):
        if shape[dim] % size:
            raise PruningError(f"sparse tensor of shape {shape}: dimension {dim} is not a "
                               f"multiple of its block ({size}); padded blocks are not decoded")
    dense = np.zeros(shape, dtype=values.dtype)
    indices = [0] * len(order)
    cursor = [0]

    def place(level: int, prev: int) -> None:
        if level == len(order):
            position = [0] * rank
            for i in range(rank):
                position[order[i]] = indices[i]
            for i in range(rank, len(order)):
                block = order[i] - rank
                dim = block_map[block]
                position[dim] = position[dim] * block_size[block] + indices[i]
            dense[tuple(position)] = values[cursor[0]]
            cursor[0] += 1
            return
        meta = levels[level]
        if meta.format == schema.DimensionType.DENSE:
            size = int(meta.denseSize)
            for i in range(size):
                indices[level] = i
                place(level + 1, prev * size + i)
        else:
            segments = meta.arraySegments.values
            positions = meta.arrayIndices.values
            for i in range(int(segments[prev]), int(segments[prev + 1])):
                indices[level] = int(positions[i])
                place(level + 1, i)

    place(0, 0)
    if cursor[0] != len(values):
        raise PruningError(f"sparse tensor: densified {cursor[0]} values but the buffer holds "
                           f"{len(values)}; the SparsityParameters do not match its data")
    return dense
