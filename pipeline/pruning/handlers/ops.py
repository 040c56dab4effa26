"""Handlers of ops called on Keras tensors: tf_keras' TFOpLambda and Keras 3 operations.

``x * 0.5`` or ``tf.nn.relu6(x)`` in a tf_keras model is a TFOpLambda layer
naming its TensorFlow function; ``x * 0.5`` or ``keras.ops.relu(x)`` in a
Keras 3 model is a bare operation node (a ``Multiply`` operation).
Either way: an elementwise op whose other arguments are scalars passes
channels through (MobileNetV3's hard-swish ``x * relu6(x + 3) / 6``); an
elementwise op on several tensors couples them like Add. Any other op, or one
with a per-channel constant, is opaque: its channels are kept, which is
always correct. Every Keras 3 operation class without a declared handler is
registered opaque when the Keras 3 family loads (:func:`keep_whole`).
"""
from __future__ import annotations

import numpy as np

from pipeline.pruning.handlers.base import Handler, declare, find_handler, register_handler
from pipeline.pruning.handlers.channelwise import OpaqueHandler
from pipeline.pruning.handlers.merge import CouplerHandler

ELEMENTWISE_TF_FUNCTIONS = frozenset({
    "__operators__.add", "math.add", "math.add_n", "math.subtract", "math.multiply",
    "math.truediv", "math.divide", "math.maximum", "math.minimum", "math.pow", "math.negative",
    "math.abs", "math.exp", "math.log", "math.sqrt", "math.rsqrt", "math.square", "math.sigmoid",
    "math.tanh", "math.erf", "nn.relu", "nn.relu6", "nn.elu", "nn.selu", "nn.silu", "nn.swish",
    "nn.gelu", "nn.softplus", "nn.leaky_relu", "clip_by_value", "identity", "cast",
})

# Keras 3 operations ("op:" + module in Keras 3's source tree + class) that act position by position.
ELEMENTWISE_KERAS_OPS = (
    [f"op:ops.numpy.{name}" for name in (
        "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
        "Negative", "Abs", "Absolute", "Exp", "Log", "Sqrt", "Square", "Clip", "Tanh",
        "Reciprocal", "Sign")]
    + [f"op:ops.nn.{name}" for name in (
        "Relu", "Relu6", "Sigmoid", "Silu", "Gelu", "Elu", "Selu", "Softplus", "Softsign",
        "LeakyRelu", "HardSigmoid", "HardSilu", "Celu", "HardTanh", "LogSigmoid")]
    + ["op:ops.math.Rsqrt", "op:ops.math.Erf", "op:ops.core.Cast", "op:ops.core.StopGradient",
       "op:activations.activations.ReLU", "op:activations.activations.Mish"])


class ElementwiseOpHandler(Handler):
    """An elementwise op: couples its same-width tensor inputs if its constants are scalars."""

    def trace(self, node, ins, tracer):
        if all(_scalar(c) for c in node.constants):
            return CouplerHandler().trace(node, ins, tracer)
        return OpaqueHandler().trace(node, ins, tracer)


class TFOpLambdaHandler(Handler):
    """tf_keras' TFOpLambda: elementwise when its TensorFlow function is one of ours."""

    def trace(self, node, ins, tracer):
        if node.layer.get_config().get("function") in ELEMENTWISE_TF_FUNCTIONS:
            return ElementwiseOpHandler().trace(node, ins, tracer)
        return OpaqueHandler().trace(node, ins, tracer)


def keep_whole(operation_class: type) -> None:
    """Registers an opaque handler for an operation class that has none."""
    if find_handler(operation_class) is None:
        register_handler(operation_class, OpaqueHandler())


def _scalar(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    try:
        return np.size(value) <= 1
    except TypeError:
        return False


declare(["TFOpLambda"], TFOpLambdaHandler())
declare(["SlicingOpLambda"], OpaqueHandler())
declare(ELEMENTWISE_KERAS_OPS, ElementwiseOpHandler())
