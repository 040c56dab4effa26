"""Handlers of layers that combine several tensors.

* Couplers (Add, Subtract, Multiply, Average, Maximum, Minimum, and
  InceptionResNetV2's CustomScaleLayer): every input whose channel axis has
  the output's length is tied position by position, so one channel is
  removed from all of them at once. An input with a channel axis of 1 (a
  broadcast gate) is not tied.
* Concatenate: on the channel axis the output's ids are the inputs' ids one
  after another (channel j of the second input sits at offset C_0 + j); on
  any other axis the inputs are tied like a coupler.
"""
from __future__ import annotations

import numpy as np

from pipeline.pruning.handlers.base import Handler, channels, declare


class CouplerHandler(Handler):
    """Elementwise ops with broadcasting over a shared channel axis."""

    def trace(self, node, ins, tracer):
        width = channels(node.out_shapes[0])
        full = [ids for ids in ins if len(ids) == width]
        for ids in full[1:]:
            tracer.unify(full[0], ids)
        if full:
            return [full[0]]
        # Every input broadcasts along channels (e.g. (…,1) * (…,1) -> (…,1)).
        return [tracer.fresh_blocked(width)]


class ConcatenateHandler(Handler):
    """Concatenate: offsets on the channel axis, coupling on any other axis."""

    def trace(self, node, ins, tracer):
        rank = len(node.out_shapes[0]) + 1
        if node.layer.axis % rank == rank - 1:
            return [np.concatenate(ins)]
        return CouplerHandler().trace(node, ins, tracer)


declare(["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "CustomScaleLayer"],
        CouplerHandler())
declare(["Concatenate"], ConcatenateHandler())
