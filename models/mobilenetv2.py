"""A small MobileNetV2 for 28-64 pixel inputs (Sandler et al. 2018).

Inverted residual blocks: 1x1 expansion, 3x3 depthwise, linear 1x1
projection, with a residual ``Add`` when stride is 1 and widths match.
Compared with the ImageNet network it has fewer stages and a stride-1 stem,
so a 28x28 input ends at 4x4 rather than vanishing.
"""
from __future__ import annotations

from types import ModuleType

import tf_keras

from models.registry import register

# (expansion t, output channels c, repeats n, first stride s), as in the paper's table 2.
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 1, 1))
HEAD = 256


def _divisible(v: float, divisor: int = 8) -> int:
    """The paper's rounding: nearest multiple of 8, never below 90% of ``v``."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _inverted_residual(K, x, expansion, channels, stride, name):
    inputs = x
    if expansion != 1:
        x = K.layers.Conv2D(x.shape[-1] * expansion, 1, use_bias=False, name=f"{name}_expand")(x)
        x = K.layers.BatchNormalization(name=f"{name}_expand_bn")(x)
        x = K.layers.ReLU(6.0, name=f"{name}_expand_relu")(x)
    x = K.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                 name=f"{name}_depthwise")(x)
    x = K.layers.BatchNormalization(name=f"{name}_depthwise_bn")(x)
    x = K.layers.ReLU(6.0, name=f"{name}_depthwise_relu")(x)
    x = K.layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_project")(x)
    x = K.layers.BatchNormalization(name=f"{name}_project_bn")(x)
    if stride == 1 and inputs.shape[-1] == channels:
        x = K.layers.Add(name=f"{name}_add")([inputs, x])
    return x


@register("mobilenetv2")
def mobilenetv2(input_shape, num_classes, width: float = 1.0, dropout: float = 0.2, *,
                K: ModuleType = tf_keras):
    """Builds the small MobileNetV2.

    Args:
      input_shape: ``(height, width, channels)``, at least 16x16.
      num_classes: classes of the softmax output.
      width: the paper's width multiplier (channels rounded to multiples of 8).
      dropout: dropout rate before the classifier.
      K: the Keras package to build in, ``tf_keras`` or ``keras`` (Keras 3).

    Raises:
      ValueError: input smaller than 16x16 or a non-positive width.
    """
    if width <= 0:
        raise ValueError(f"mobilenetv2: width must be > 0, got {width}")
    if min(input_shape[:2]) < 16:
        raise ValueError(f"mobilenetv2: input {input_shape} is smaller than 16x16")
    inputs = K.Input(input_shape, name="image")
    x = K.layers.Conv2D(_divisible(32 * width), 3, padding="same", use_bias=False,
                        name="stem_conv")(inputs)
    x = K.layers.BatchNormalization(name="stem_bn")(x)
    x = K.layers.ReLU(6.0, name="stem_relu")(x)
    index = 0
    for t, c, n, s in BLOCKS:
        for i in range(n):
            index += 1
            x = _inverted_residual(K, x, t, _divisible(c * width), s if i == 0 else 1,
                                   f"block{index}")
    x = K.layers.Conv2D(_divisible(HEAD * max(width, 1.0)), 1, use_bias=False, name="head_conv")(x)
    x = K.layers.BatchNormalization(name="head_bn")(x)
    x = K.layers.ReLU(6.0, name="head_relu")(x)
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = K.layers.Dropout(dropout, name="dropout")(x)
    outputs = K.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return K.Model(inputs, outputs, name="mobilenetv2")
