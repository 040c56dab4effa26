"""Handlers of the layers that compute new channels: convolutions and Dense.

Kernel layouts (both Kerases, channels_last):
  Conv*D:          (*k, C_in / groups, C_out)
  Conv*DTranspose: (*k, C_out, C_in)
  DepthwiseConv*D: (*k, C_in, depth_multiplier), named ``depthwise_kernel`` in
                   tf_keras and ``kernel`` in Keras 3
  SeparableConv*D: depthwise (*k, C_in, m), pointwise (1.., C_in * m, C_out)
  Dense:           (C_in, units)

MACs follow the lecture lab's convention: one multiply-accumulate per kernel
weight per output position (bias, BN and activations are not counted):
Conv = out positions x prod(k) x C_in/groups x C_out; Dense = leading
positions x C_in x units; Transpose uses the input positions.
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import UnsupportedLayerError
from pipeline.pruning.handlers.base import (Handler, SparseKernel, WeightAxis, channels,
                                            declare, spatial)


def _kernel_size(node, name="kernel") -> int:
    w = node.named_weights.get(name)
    if w is not None:
        return int(np.prod(w.shape[:-2]))
    raise UnsupportedLayerError(f"layer '{node.name}' has no weight named {name}")



def _check_channels_last(node):
    if node.layer.get_config().get("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(
            f"layer '{node.name}' ({node.class_name}) uses data_format='channels_first'; only "
            "channels_last models can be pruned: rebuild the model channels_last, or keep the "
            f"layer with ignore=['{node.name}']")


def _with_bias(node, axes, out_ids):
    if node.layer.get_config().get("use_bias", False):
        axes.append(WeightAxis("bias", 0, out_ids, "out"))
    return axes


class ConvHandler(Handler):
    """Conv1D/2D/3D, including grouped convolutions.

    With ``groups > 1`` the kernel sees C_in/groups channels per group. Local
    input index k is tied across groups (and so is local output index k), so
    every group loses the same channels and both counts stay divisible by
    ``groups``. A grouped conv with one input channel per group behaves as a
    depthwise conv: pruning input channel j removes its whole group.
    """

    def trace(self, node, ins, tracer):
        _check_channels_last(node)
        groups = node.layer.groups
        c_in, c_out = len(ins[0]), channels(node.out_shapes[0])
        if groups > 1 and groups == c_in:
            return [np.repeat(ins[0], c_out // c_in)]
        out = tracer.fresh(c_out, node.name)
        if groups > 1:
            _tie_across_groups(tracer, ins[0], groups)
            _tie_across_groups(tracer, out, groups)
        return [out]

    def weight_axes(self, node, ins, outs):
        groups = node.layer.groups
        per_group = len(ins[0]) // groups
        if groups > 1 and per_group == 1:
            return _with_bias(node, [WeightAxis("kernel", -1, outs[0], "out")], outs[0])
        axes = [WeightAxis("kernel", -1, outs[0], "out"),
                WeightAxis("kernel", -2, ins[0][:per_group], "in")]
        return _with_bias(node, axes, outs[0])

    def edit_config(self, config, node, in_counts, out_counts):
        config["filters"] = out_counts[0]
        groups = node.layer.groups
        if groups > 1 and groups == channels(node.in_shapes[0]):
            config["groups"] = in_counts[0]

    def macs(self, node, n_in, n_out):
        groups = node.layer.groups
        if groups > 1 and groups == channels(node.in_shapes[0]):
            groups = n_in
        return spatial(node.out_shapes[0]) * _kernel_size(node) * (n_in // groups) * n_out


def _tie_across_groups(tracer, ids, groups):
    local = ids.reshape(groups, -1)
    for g in range(1, groups):
        tracer.unify(local[0], local[g])


class ConvTransposeHandler(Handler):
    """Conv1D/2D/3DTranspose: kernel (*k, C_out, C_in)."""

    def trace(self, node, ins, tracer):
        _check_channels_last(node)
        return [tracer.fresh(channels(node.out_shapes[0]), node.name)]

    def weight_axes(self, node, ins, outs):
        axes = [WeightAxis("kernel", -2, outs[0], "out"), WeightAxis("kernel", -1, ins[0], "in")]
        return _with_bias(node, axes, outs[0])

    def edit_config(self, config, node, in_counts, out_counts):
        config["filters"] = out_counts[0]

    def macs(self, node, n_in, n_out):
        return spatial(node.in_shapes[0]) * _kernel_size(node) * n_in * n_out


class DepthwiseHandler(Handler):
    """DepthwiseConv1D/2D: output channel j*m+k comes from input channel j."""

    def trace(self, node, ins, tracer):
        _check_channels_last(node)
        return [np.repeat(ins[0], node.layer.depth_multiplier)]

    def weight_axes(self, node, ins, outs):
        axes = [WeightAxis(_depthwise_name(node), -2, ins[0], "out")]
        return _with_bias(node, axes, outs[0])

    def macs(self, node, n_in, n_out):
        return spatial(node.out_shapes[0]) * _kernel_size(node, _depthwise_name(node)) * n_out


def _depthwise_name(node) -> str:
    names = set(node.named_weights)
    return "depthwise_kernel" if "depthwise_kernel" in names else "kernel"


class SeparableHandler(Handler):
    """SeparableConv1D/2D: a depthwise kernel on the input, a pointwise one to the output."""

    def trace(self, node, ins, tracer):
        _check_channels_last(node)
        return [tracer.fresh(channels(node.out_shapes[0]), node.name)]

    def weight_axes(self, node, ins, outs):
        mult = node.layer.depth_multiplier
        axes = [WeightAxis("depthwise_kernel", -2, ins[0], "in"),
                WeightAxis("pointwise_kernel", -2, np.repeat(ins[0], mult), "in"),
                WeightAxis("pointwise_kernel", -1, outs[0], "out")]
        return _with_bias(node, axes, outs[0])

    def edit_config(self, config, node, in_counts, out_counts):
        config["filters"] = out_counts[0]

    def macs(self, node, n_in, n_out):
        mult = node.layer.depth_multiplier
        depthwise = _kernel_size(node, "depthwise_kernel") * n_in * mult
        return spatial(node.out_shapes[0]) * (depthwise + n_in * mult * n_out)


class DenseHandler(Handler):
    """Dense on the last axis of a rank-2, 3 or 4 input."""

    def trace(self, node, ins, tracer):
        return [tracer.fresh(node.layer.units, node.name)]

    def weight_axes(self, node, ins, outs):
        axes = [WeightAxis("kernel", 1, outs[0], "out"), WeightAxis("kernel", 0, ins[0], "in")]
        return _with_bias(node, axes, outs[0])

    def edit_config(self, config, node, in_counts, out_counts):
        config["units"] = out_counts[0]

    def macs(self, node, n_in, n_out):
        return spatial(node.in_shapes[0]) * n_in * n_out


# The kernels the export's 2:4 and 1x4-block patterns take. A Conv1D/2D kernel (grouped:
# per group) and a SeparableConv's pointwise one become CONV_2D filters whose last axis is
# the Keras input axis; only a Dense becomes FULLY_CONNECTED.
CONV_KERNEL = SparseKernel("kernel", in_axis=-2, two_of_four=True)
POINTWISE_KERNEL = SparseKernel("pointwise_kernel", in_axis=-2, two_of_four=True)
DENSE_KERNEL = SparseKernel("kernel", in_axis=-2, two_of_four=True, block_1x4=True)
DEPTHWISE_KERNEL = SparseKernel(
    "depthwise_kernel", in_axis=-2, two_of_four=False,
    reason="depthwise conv: one input channel per filter, nothing to group along")
CONV3D_KERNEL = SparseKernel(
    "kernel", in_axis=-2, two_of_four=False,
    reason="Conv3D becomes TFLite's CONV_3D, whose filter keeps the output channels last "
           "(DHWIO), so no 2:4 layout runs along its inputs")
TRANSPOSE_KERNEL = SparseKernel(
    "kernel", in_axis=-1, two_of_four=False,
    reason="transposed conv: its input channels are the kernel's last axis, and TF-MOT's "
           "2:4 mask groups the second-to-last (its output channels)")

declare(["Conv1D", "Conv2D"], ConvHandler(sparse=CONV_KERNEL))
declare(["Conv3D"], ConvHandler(sparse=CONV3D_KERNEL))
declare(["Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"],
        ConvTransposeHandler(sparse=TRANSPOSE_KERNEL))
declare(["DepthwiseConv1D", "DepthwiseConv2D"], DepthwiseHandler(sparse=DEPTHWISE_KERNEL))
declare(["SeparableConv1D", "SeparableConv2D"], SeparableHandler(sparse=POINTWISE_KERNEL))
declare(["Dense"], DenseHandler(sparse=DENSE_KERNEL))
