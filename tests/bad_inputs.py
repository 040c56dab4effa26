"""Bad inputs for the reliability tests: damaged model files, odd models, broken data sets.

Shared by ``preflight_test.py`` (the Python API) and ``reliability_test.py``
(the command line). Everything is small and built in a temporary folder.
"""
import gzip
import os

import numpy as np

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras

L = tf_keras.layers
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def write_idx(path, array) -> None:
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def fake_fashion_mnist(directory, n=200, shape=(28, 28), classes=10) -> str:
    """Four IDX files of random images and labels, as Fashion-MNIST lays them out."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for (images, labels), count in (((IDX_FILES[0], IDX_FILES[1]), n),
                                    ((IDX_FILES[2], IDX_FILES[3]), 50)):
        write_idx(os.path.join(directory, images), rng.integers(0, 256, (count, *shape)))
        write_idx(os.path.join(directory, labels), rng.integers(0, classes, count))
    return str(directory)


def data_dirs(root) -> dict:
    """data.dir values by case: ok, missing, empty, unreadable, wrong shape, bad labels."""
    dirs = {"ok": fake_fashion_mnist(os.path.join(root, "ok")),
            "missing": os.path.join(root, "nowhere"),
            "empty": os.path.join(root, "empty"),
            "shape": fake_fashion_mnist(os.path.join(root, "shape"), shape=(28, 28, 3)),
            "flat": fake_fashion_mnist(os.path.join(root, "flat"), shape=(784,)),
            "labels": fake_fashion_mnist(os.path.join(root, "labels"), classes=12),
            "unreadable": fake_fashion_mnist(os.path.join(root, "unreadable"))}
    os.makedirs(dirs["empty"])
    with open(os.path.join(dirs["unreadable"], IDX_FILES[0]), "wb") as f:
        f.write(b"\x1f\x8b not really gzip")  # root reads any file: damage it instead
    return dirs


def _head(x, classes=10):
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(classes, activation="softmax", name="predictions")(x)


class _Subclassed(tf_keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = L.Conv2D(4, 3)
        self.pool = L.GlobalAveragePooling2D()
        self.out = L.Dense(10)

    def call(self, x):
        return self.out(self.pool(self.conv(x)))


def model_files(root) -> dict:
    """model.path values by case; each but ``good`` is refused with its own error."""
    os.makedirs(root, exist_ok=True)
    paths = {}

    def save(name, inputs, outputs):
        paths[name] = os.path.join(root, f"{name}.keras")
        tf_keras.Model(inputs, outputs).save(paths[name])

    inp = tf_keras.Input((28, 28, 1))
    save("good", inp, _head(L.Conv2D(8, 3, name="c")(inp)))
    shared = L.Conv2D(1, 3, padding="same", name="shared")
    save("shared", inp, _head(L.Conv2D(8, 3, name="c")(shared(shared(inp)))))
    x = L.UnitNormalization(name="unitnorm")(L.Conv2D(8, 3, name="c")(inp))
    save("unsupported", inp, _head(L.Conv2D(8, 3, name="c2")(x)))
    save("no_prunable", inp, L.Dense(10, activation="softmax")(L.Flatten()(inp)))
    big = tf_keras.Input((32, 32, 3))
    save("input_size", big, _head(L.Conv2D(8, 3, name="c")(big)))
    save("classes", inp, _head(L.Conv2D(8, 3, name="c")(inp), classes=5))
    with open(paths["good"], "rb") as f:
        raw = f.read()
    damaged = bytearray(raw)
    for i in range(1000, len(damaged), 997):
        damaged[i] ^= 0xFF
    files = {"empty.keras": b"", "truncated.keras": raw[:len(raw) // 2],
             "corrupt.keras": bytes(damaged), "notes.txt": b"not a model\n",
             "image.png": tf.io.encode_png(tf.zeros((4, 4, 3), tf.uint8)).numpy()}
    for name, body in files.items():
        paths[name.split(".")[0]] = os.path.join(root, name)
        with open(paths[name.split(".")[0]], "wb") as f:
            f.write(body)
    net = _Subclassed()
    net(np.zeros((1, 28, 28, 1), "float32"))
    paths["subclassed"] = os.path.join(root, "subclassed_savedmodel")
    net.save(paths["subclassed"])
    paths["missing"] = os.path.join(root, "nope.keras")
    import keras  # Keras 3 itself, as `pip install tensorflow` brings it
    paths["keras3"] = os.path.join(root, "keras3.keras")
    keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3),
                      keras.layers.GlobalAveragePooling2D(),
                      keras.layers.Dense(10, activation="softmax")]).save(paths["keras3"])
    paths["keras3_newer"] = os.path.join(root, "keras3_newer.keras")
    _with_keras_version(paths["keras3"], paths["keras3_newer"], "3.99.0")
    return paths


def _with_keras_version(source, target, version):
    """A copy of a .keras archive whose metadata says a future Keras saved it."""
    import json
    import zipfile
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            body = old.read(item)
            if item.filename == "metadata.json":
                body = json.dumps({**json.loads(body), "keras_version": version}).encode()
            new.writestr(item, body)
