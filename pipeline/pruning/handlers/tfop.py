"""Handler of TFOpLambda: TensorFlow ops called on Keras tensors (``x * 0.5``, ``tf.nn.relu6``).

Elementwise ops whose other arguments are scalars pass channels through
(MobileNetV3's hard-swish ``x * relu6(x + 3) / 6``); elementwise ops on two
tensors couple them like Add. Any other op, or one with a per-channel
constant, is opaque: its channels are kept, which is always correct.
"""
from __future__ import annotations

import numpy as np

from pipeline.pruning import graph
from pipeline.pruning.handlers.base import Handler, register_all
from pipeline.pruning.handlers.channelwise import OpaqueHandler
from pipeline.pruning.handlers.merge import CouplerHandler

ELEMENTWISE_OPS = frozenset({
    "__operators__.add", "math.add", "math.add_n", "math.subtract", "math.multiply",
    "math.truediv", "math.divide", "math.maximum", "math.minimum", "math.pow", "math.negative",
    "math.abs", "math.exp", "math.log", "math.sqrt", "math.rsqrt", "math.square", "math.sigmoid",
    "math.tanh", "math.erf", "nn.relu", "nn.relu6", "nn.elu", "nn.selu", "nn.silu", "nn.swish",
    "nn.gelu", "nn.softplus", "nn.leaky_relu", "clip_by_value", "identity", "cast",
})


class TFOpLambdaHandler(Handler):
    def trace(self, node, ins, tracer):
        function = node.layer.get_config().get("function")
        if function in ELEMENTWISE_OPS and all(_scalar(c) for c in node.constants):
            return CouplerHandler().trace(node, ins, tracer)
        return OpaqueHandler().trace(node, ins, tracer)


def _scalar(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    try:
        return np.size(value) <= 1
    except TypeError:
        return False


register_all([graph.TF_OP_LAMBDA], TFOpLambdaHandler())
register_all([graph.SLICING_OP_LAMBDA], OpaqueHandler())
