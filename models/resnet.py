"""CIFAR-style ResNets (He et al. 2016, section 4.2): ResNet-20 and ResNet-56.

Three stages of ``n`` basic blocks at 16, 32 and 64 channels (times
``width``); 6n+2 weighted layers. Shortcuts that change shape are 1x1
strided convolutions with BN (option B), so every residual ``Add`` couples
channels the pruner can follow.
"""
from __future__ import annotations

from types import ModuleType

import tf_keras

from models.registry import register
from models.vgg import scaled

STAGES = (16, 32, 64)


def _conv_bn(K, x, channels, stride, name, relu=True, kernel=3):
    x = K.layers.Conv2D(channels, kernel, strides=stride, padding="same", use_bias=False,
                        kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = K.layers.BatchNormalization(name=f"{name}_bn")(x)
    return K.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(K, x, channels, stride, name):
    shortcut = x
    y = _conv_bn(K, x, channels, stride, f"{name}_1")
    y = _conv_bn(K, y, channels, 1, f"{name}_2", relu=False)
    if stride != 1 or x.shape[-1] != channels:
        shortcut = _conv_bn(K, x, channels, stride, f"{name}_proj", relu=False, kernel=1)
    y = K.layers.Add(name=f"{name}_add")([y, shortcut])
    return K.layers.ReLU(name=f"{name}_out")(y)


def cifar_resnet(input_shape, num_classes, depth: int, width: float = 1.0,
                 dropout: float = 0.0, *, K: ModuleType = tf_keras):
    """Builds a CIFAR ResNet of ``depth`` = 6n+2 layers.

    Raises:
      ValueError: ``depth`` is not of the form 6n+2.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet depth must be 6n+2 (20, 32, 44, 56...), got {depth}")
    blocks = (depth - 2) // 6
    inputs = K.Input(input_shape, name="image")
    x = _conv_bn(K, inputs, scaled(STAGES[0], width), 1, "stem")
    for s, channels in enumerate(STAGES):
        for b in range(blocks):
            stride = 2 if s > 0 and b == 0 else 1
            x = _basic_block(K, x, scaled(channels, width), stride, f"stage{s + 1}_block{b + 1}")
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = K.layers.Dropout(dropout, name="dropout")(x)
    outputs = K.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return K.Model(inputs, outputs, name=f"resnet{depth}")


@register("resnet20")
def resnet20(input_shape, num_classes, width: float = 1.0, dropout: float = 0.0, *,
             K: ModuleType = tf_keras):
    """ResNet-20 (0.27M parameters at width 1)."""
    return cifar_resnet(input_shape, num_classes, 20, width, dropout, K=K)


@register("resnet56")
def resnet56(input_shape, num_classes, width: float = 1.0, dropout: float = 0.0, *,
             K: ModuleType = tf_keras):
    """ResNet-56 (0.86M parameters at width 1)."""
    return cifar_resnet(input_shape, num_classes, 56, width, dropout, K=K)
