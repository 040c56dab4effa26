"""Model files that declare an input the data do not have, and a folder of images to run them on.

Shared by tests/run/preflight_test.py, tests/run/model_input_test.py and
tests/integration/declared_input_test.py: a tf_keras model saved as ``.h5``
the way an outside author would, 64x64x1 in, 7 classes out, 8-32 channels
(too narrow for ``round_to=16`` to remove half its MACs), and a folder of
32x32 RGB PNGs in 7 class folders.
"""
import os

import numpy as np

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras

L = tf_keras.layers
CLASSES = 7


def narrow_model(shape=(64, 64, 1), classes=CLASSES, widths=(8, 16, 32)):
    """Strided Conv-BN-ReLU blocks of ``widths`` channels, pooled, a softmax of ``classes``."""
    tf_keras.utils.set_random_seed(0)
    x = inputs = tf_keras.Input(shape, name="image")
    for i, width in enumerate(widths):
        x = L.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tf_keras.Model(inputs, L.Dense(classes, activation="softmax", name="predictions")(x))


def save_h5(model, path) -> str:
    """``model`` saved in the legacy HDF5 format, as Keras 2 users shipped models."""
    model.save(str(path), save_format="h5")
    return str(path)


def image_folder(root, size=32, per_class=12, classes=CLASSES) -> str:
    """``root/<class_i>/*.png``: ``per_class`` random RGB images of ``size`` per class."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = os.path.join(str(root), f"class_{c}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            png = tf.io.encode_png(tf.constant(pixels)).numpy()
            with open(os.path.join(folder, f"{i}.png"), "wb") as f:
                f.write(png)
    return str(root)
