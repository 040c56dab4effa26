"""Handlers of layers that keep channels where they are.

* :func:`passthrough`: no per-channel state (pooling, padding, Dropout...).
* :func:`per_channel`: per-channel weights sliced along their last axis
  (BatchNormalization, LayerNormalization over channels, PReLU, LayerScale).
* :class:`OpaqueHandler`: mixes channels in a way the pruner cannot follow
  (softmax over channels, an unknown TF op): its inputs and outputs are kept
  whole, which is always safe.

Note that LayerNormalization over the channel axis normalises with statistics
of all channels, so removing even a dead channel changes its output slightly;
fine-tuning absorbs it.
"""
from __future__ import annotations

from typing import Sequence

import tf_keras

from pipeline.pruning import graph
from pipeline.pruning.handlers.base import Handler, WeightAxis, channels, register_all, short_name


class PassThroughHandler(Handler):
    """Every input's channels come out unchanged (first input to first output)."""

    def trace(self, node, ins, tracer):
        return [ins[0] for _ in node.outputs]


class PerChannelHandler(Handler):
    """Weights whose last axis has one entry per channel.

    Args:
      weights: short names of the sliced weights.
      scored: the subset importance criteria read (trainable parameters).
      tags: weight name -> tags for criteria (``{"gamma": {"bn_scale"}}``).
      config_key: a config entry holding the channel count, if any.
      axis_key: a config entry naming the normalised axis; when it does not
        include the last axis the layer is a plain pass-through.
    """

    def __init__(self, weights: Sequence[str], scored: Sequence[str] | None = None,
                 tags: dict | None = None, config_key: str | None = None,
                 axis_key: str | None = None):
        self.weights = tuple(weights)
        self.scored = frozenset(self.weights if scored is None else scored)
        self.tags = {k: frozenset(v) for k, v in (tags or {}).items()}
        self.config_key = config_key
        self.axis_key = axis_key

    def trace(self, node, ins, tracer):
        return [ins[0]]

    def weight_axes(self, node, ins, outs):
        if not self._acts_on_channels(node):
            return []
        present = {short_name(w): tuple(w.shape) for w in node.layer.weights}
        axes = []
        for name in self.weights:
            shape = present.get(name)
            if shape and shape[-1] == len(ins[0]) and len(ins[0]) > 1:
                axes.append(WeightAxis(name, -1, ins[0], "channel", name in self.scored,
                                       self.tags.get(name, frozenset())))
        return axes

    def edit_config(self, config, node, in_counts, out_counts):
        if self.config_key and self._acts_on_channels(node):
            config[self.config_key] = in_counts[0]

    def _acts_on_channels(self, node) -> bool:
        if self.axis_key is None:
            return True
        axis = node.layer.get_config().get(self.axis_key, -1)
        rank = len(node.in_shapes[0]) + 1
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        return any(a % rank == rank - 1 for a in axes)


class OpaqueHandler(Handler):
    """Keeps every input and output channel: for ops that mix channels."""

    def trace(self, node, ins, tracer):
        for ids in ins:
            tracer.block(ids)
        return [tracer.fresh_blocked(channels(s)) for s in node.out_shapes]


class ActivationHandler(Handler):
    """Activation / Softmax layers: elementwise unless they normalise over channels."""

    ELEMENTWISE = frozenset({
        "linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "swish", "silu", "gelu",
        "elu", "selu", "softplus", "softsign", "exponential", "hard_swish", "mish",
        "leaky_relu"})

    def trace(self, node, ins, tracer):
        config = node.layer.get_config()
        if node.class_name == "Softmax":
            elementwise = _softmax_skips_channels(config.get("axis", -1), len(node.in_shapes[0]))
        else:
            elementwise = config.get("activation") in self.ELEMENTWISE
        if elementwise:
            return [ins[0]]
        return OpaqueHandler().trace(node, ins, tracer)


def _softmax_skips_channels(axis, rank_wo_batch):
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return all(a % (rank_wo_batch + 1) != rank_wo_batch for a in axes)



def passthrough() -> Handler:
    """A handler for layers with no per-channel state (public helper)."""
    return PassThroughHandler()


def per_channel(weights: Sequence[str], *, scored: Sequence[str] | None = None,
                config_key: str | None = None, axis_key: str | None = None) -> Handler:
    """A handler for a custom layer whose weights have one entry per channel.

    Args:
      weights: short names of the weights to slice along their last axis.
      scored: which of them importance criteria read (default: all).
      config_key: config entry holding the channel count (ConvNeXt's
        LayerScale has ``projection_dim``).
      axis_key: config entry naming the layer's axis; when it excludes the
        channel axis the layer is treated as a pass-through.

    Example:
      >>> pipeline.register_handler(MyScale, pipeline.pruning.handlers.per_channel(("gamma",)))
    """
    return PerChannelHandler(weights, scored=scored, config_key=config_key, axis_key=axis_key)


L = tf_keras.layers
register_all([
    L.ReLU, L.LeakyReLU, L.ELU, L.ThresholdedReLU, L.Dropout, L.SpatialDropout1D,
    L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianNoise, L.GaussianDropout, L.AlphaDropout,
    L.ActivityRegularization,
    L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
    L.AveragePooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D,
    L.GlobalAveragePooling3D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
    L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D,
    L.UpSampling1D, L.UpSampling2D, L.UpSampling3D, L.Rescaling,
], PassThroughHandler())
register_all([L.Activation, L.Softmax], ActivationHandler())
register_all([L.BatchNormalization], PerChannelHandler(
    ("gamma", "beta", "moving_mean", "moving_variance"), scored=("gamma", "beta"),
    tags={"gamma": {"bn_scale"}}, axis_key="axis"))
register_all([L.LayerNormalization], PerChannelHandler(("gamma", "beta"), axis_key="axis"))
register_all([L.PReLU], PerChannelHandler(("alpha",)))
register_all([L.Normalization], PerChannelHandler(("mean", "variance"), scored=()))
# ConvNeXt's LayerScale multiplies each channel by gamma; its config stores the width.
register_all([graph.LAYER_SCALE], PerChannelHandler(("gamma",), config_key="projection_dim"))
