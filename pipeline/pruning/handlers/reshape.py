"""Handlers of layers that move channels to new positions: Flatten, Reshape, Permute.

The mapping is computed, not special-cased: the handler lays each channel's
position over the input's static shape, applies the layer's own reshaping in
numpy, and reads which channel sits at each position of the new last axis.
Flatten of an (H, W, C) map therefore gives ids tiled H*W times, so channel
c owns Dense rows c, c+C, c+2C, ... When the new last axis does not carry
one channel per position (the channel axis did not survive), the layer is
opaque: its channels are kept.
"""
from __future__ import annotations

import numpy as np

from pipeline.pruning.handlers.base import Handler, declare
from pipeline.pruning.handlers.channelwise import OpaqueHandler


class ReshapeLikeHandler(Handler):
    """Base: subclasses give ``transform(positions, node)``."""

    def transform(self, positions: np.ndarray, node) -> np.ndarray:
        raise NotImplementedError

    def trace(self, node, ins, tracer):
        mapping = self._channel_map(node)
        if mapping is None:
            return OpaqueHandler().trace(node, ins, tracer)
        return [ins[0][mapping]]

    def _channel_map(self, node):
        shape = node.in_shapes[0]
        if not shape or any(d is None for d in shape):
            return None
        positions = np.broadcast_to(np.arange(shape[-1]), shape)
        try:
            moved = self.transform(positions, node)
        except ValueError:
            return None
        rows = moved.reshape(-1, moved.shape[-1]) if moved.ndim else moved.reshape(1, 1)
        if not (rows == rows[0]).all():
            return None
        return rows[0]


class FlattenHandler(ReshapeLikeHandler):
    def transform(self, positions, node):
        return positions.reshape(-1)


class ReshapeHandler(ReshapeLikeHandler):
    def transform(self, positions, node):
        return positions.reshape(tuple(node.layer.target_shape))

    def edit_config(self, config, node, in_counts, out_counts):
        target = list(config["target_shape"])
        if target[-1] != -1 and self._channel_map(node) is not None:
            target[-1] = out_counts[0]
            config["target_shape"] = tuple(target)


class PermuteHandler(ReshapeLikeHandler):
    def transform(self, positions, node):
        return np.transpose(positions, [d - 1 for d in node.layer.dims])


declare(["Flatten"], FlattenHandler())
declare(["Reshape"], ReshapeHandler())
declare(["Permute"], PermuteHandler())
