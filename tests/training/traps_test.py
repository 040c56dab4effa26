"""pipeline.training.traps: the layers oneDNN crashes on in training are found, and avoided.

TF 2.21's oneDNN kernels die in the backward pass of a 1x1 stride-2 Conv2D on
fewer than 16 input channels at 56 px and up. Training such a model with
oneDNN on would kill the process, so those checks run in child processes.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tf_keras
from pipeline.training import traps


def _strided(side, channels, kernel=1, strides=2, padding="valid", cls="Conv2D", K=tf_keras):
    """A model around one conv; built only, never trained in this process (oneDNN is on)."""
    inputs = K.Input((side, side, channels))
    x = getattr(K.layers, cls)(16, kernel, strides=strides, padding=padding, name="proj")(inputs)
    x = K.layers.GlobalAveragePooling2D()(x)
    return K.Model(inputs, K.layers.Dense(7)(x))


@pytest.mark.parametrize("side, channels, padding", [(56, 8, "valid"), (60, 8, "same"),
                                                     (64, 4, "valid"), (112, 12, "valid")])
def test_the_crashing_pattern_is_found(K, side, channels, padding):
    (trap,) = traps.find(_strided(side, channels, padding=padding, K=K))
    assert trap.layer == "proj"
    assert trap.input_shape == (side, side, channels)
    assert trap.reason == f"1x1 stride-2 Conv2D on {channels} channels"


@pytest.mark.parametrize("model", [
    _strided(32, 8),  # small inputs trained fine
    _strided(56, 16),  # 16 input channels and more trained fine
    _strided(56, 8, kernel=3),
    _strided(56, 8, strides=1),
    _strided(56, 8, cls="Conv2DTranspose"),
], ids=["32px", "16ch", "3x3", "stride1", "transpose"])
def test_other_layers_are_not_traps(model):
    assert traps.find(model) == []


@pytest.mark.parametrize("fields", [dict(side=32), dict(channels=16), dict(kernel=3),
                                    dict(strides=1), dict(cls="Conv2DTranspose"),
                                    dict(cls="DepthwiseConv2D")],
                         ids=["32px", "16ch", "3x3", "stride1", "transpose", "depthwise"])
def test_other_keras3_layers_are_not_traps(fields):
    import keras
    shape = dict(side=56, channels=8) | fields
    if shape.get("cls") == "DepthwiseConv2D":
        inputs = keras.Input((56, 56, 8))
        h = keras.layers.DepthwiseConv2D(1, strides=2)(inputs)
        model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h))
    else:
        model = _strided(K=keras, **shape)
    assert traps.find(model) == []


def test_nested_sub_models_are_searched(K):
    inner = _strided(56, 8, K=K)
    inputs = K.Input((56, 56, 8))
    outer = K.Model(inputs, inner(inputs))
    assert [t.layer for t in traps.find(outer)] == [f"{inner.name}/proj"]


def test_check_raises_only_with_onednn_on(K, monkeypatch):
    model = _strided(56, 8, K=K)
    monkeypatch.setenv(traps.ENV, "1")
    with pytest.raises(traps.OneDnnTrapError, match=r"proj \(1x1 stride-2 Conv2D on 8 channels"
                                                    r".*TF_ENABLE_ONEDNN_OPTS=0"):
        traps.check(model, "the pruned model")
    monkeypatch.setenv(traps.ENV, "0")
    traps.check(model)  # nothing to avoid: TensorFlow's own kernels train it


TRAIN = textwrap.dedent("""
    import numpy as np
    import pipeline
    import KERAS as k
    from pipeline.training import fit, traps
    from pipeline.data.datasets import Datasets
    import tensorflow as tf
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 56, 56, 8), np.float32), rng.integers(0, 7, 64)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    data = Datasets(train=batches.repeat(), val=batches, test=batches,
                    calibration=batches.unbatch(), input_shape=(56, 56, 8),
                    class_names=tuple("abcdefg"), sizes={"train": 64, "val": 64, "test": 64},
                    steps_per_epoch=4)
    inputs = k.Input((56, 56, 8))
    h = k.layers.Conv2D(16, 1, strides=2, name="proj")(inputs)
    model = k.Model(inputs, k.layers.Dense(7, activation="softmax")(
        k.layers.GlobalAveragePooling2D()(h)))
    try:
        fit.fit(model, data, fit.Recipe(epochs=1, lr=0.01), WORKDIR, verbose=0)
        print("trained")
    except traps.OneDnnTrapError as e:
        print("refused:", e)
""")


def _child(code: str, onednn: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **{traps.ENV: onednn})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.mark.parametrize("package", ["tf_keras", "keras"])
def test_fit_refuses_the_trap_with_onednn_on_instead_of_crashing(package, tmp_path):
    done = _child(TRAIN.replace("WORKDIR", repr(str(tmp_path))).replace("KERAS", package), "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: the model" in done.stdout and "proj" in done.stdout


def test_fit_trains_the_trap_with_onednn_off(tmp_path):
    done = _child(TRAIN.replace("WORKDIR", repr(str(tmp_path))).replace("KERAS", "tf_keras"),
                  "0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained" in done.stdout
