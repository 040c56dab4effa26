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

from pipeline.pruning.handlers.base import Handler, WeightAxis, channels, declare


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
        present = {name: tuple(w.shape) for name, w in node.named_weights.items()}
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


declare([
    "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "Rescaling",
], PassThroughHandler())
declare(["Activation", "Softmax"], ActivationHandler())
declare(["BatchNormalization"], PerChannelHandler(
    ("gamma", "beta", "moving_mean", "moving_variance"), scored=("gamma", "beta"),
    tags={"gamma": {"bn_scale"}}, axis_key="axis"))
declare(["LayerNormalization"], PerChannelHandler(("gamma", "beta"), axis_key="axis"))
declare(["PReLU"], PerChannelHandler(("alpha",)))
declare(["Normalization"], PerChannelHandler(("mean", "variance"), scored=()))
# ConvNeXt's LayerScale multiplies each channel by gamma; its config stores the width.
declare(["LayerScale"], PerChannelHandler(("gamma",), config_key="projection_dim"))
