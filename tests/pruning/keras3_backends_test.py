"""A pruned Keras 3 model is a plain Keras 3 file: it loads elsewhere, without this project.

The model is pruned here (TensorFlow backend), saved as ``.keras``, then loaded
in a fresh Python that never imports ``pipeline`` and runs Keras 3 on another
backend (``KERAS_BACKEND=jax``, a CPU JAX from PyPI) or on TensorFlow again;
its outputs must match the pruning process's.
"""
import importlib.util
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import pipeline

LOAD_AND_RUN = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    assert "pipeline" not in sys.modules
    model = keras.saving.load_model(sys.argv[1])  # no custom objects
    x = np.load(sys.argv[2])
    np.save(sys.argv[3], np.asarray(model(x, training=False)))
    print(keras.backend.backend())
""")


def hard_swish_cnn():
    keras.utils.set_random_seed(0)
    layers = keras.layers
    x = inputs = keras.Input((24, 24, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = x * keras.ops.relu6(x + 3.0) / 6.0  # hard-swish as keras.ops nodes
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.Conv2D(16, 1)(y)
    x = layers.Add()([x, y])
    x = layers.SeparableConv2D(24, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(5, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def run_elsewhere(backend, path, x, tmp_path):
    np.save(tmp_path / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    env["KERAS_BACKEND"] = backend
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_RUN, str(path), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy")], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == backend
    return np.load(tmp_path / "y.npy")


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    model = hard_swish_cnn()
    result = pipeline.prune(model, 0.5)
    path = tmp_path_factory.mktemp("pruned") / "pruned.keras"
    result.model.save(path)
    x = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    return result, path, x


@pytest.mark.parametrize("backend", [
    "tensorflow",
    pytest.param("jax", marks=pytest.mark.skipif(
        importlib.util.find_spec("jax") is None,
        reason="jax is not installed (make setup installs it)")),
])
def test_the_pruned_keras_file_runs_on_another_backend(pruned, backend, tmp_path):
    result, path, x = pruned
    expected = np.asarray(result.model(x, training=False))
    got = run_elsewhere(backend, path, x, tmp_path)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


PRUNE_UNDER_JAX = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    import pipeline
    assert keras.backend.backend() == "jax"
    model = keras.saving.load_model(sys.argv[1])
    result = pipeline.prune(model, 0.5)
    open(sys.argv[2], "w").write(result.plan.to_json())
    x = np.load(sys.argv[3])
    np.save(sys.argv[4], np.asarray(result.model(x, training=False)))
""")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_pruning_under_the_jax_backend_makes_the_same_plan_and_model(tmp_path):
    """The graph walk, L1 scores, selection and rebuild need no TensorFlow-backend tensor."""
    model = hard_swish_cnn()
    model.save(tmp_path / "dense.keras")
    x = np.random.default_rng(1).uniform(0, 255, (2, 24, 24, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KERAS_BACKEND"] = "jax"
    done = subprocess.run(
        [sys.executable, "-c", PRUNE_UNDER_JAX, str(tmp_path / "dense.keras"),
         str(tmp_path / "plan.json"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    here = pipeline.prune(model, 0.5)
    assert (tmp_path / "plan.json").read_text() == here.plan.to_json()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"),
                               np.asarray(here.model(x, training=False)), rtol=1e-4, atol=1e-5)


def test_the_pruned_model_keeps_its_keras_ops_as_operations(pruned):
    result, _, _ = pruned
    kinds = {type(op).__module__.split(".")[-1] for op in result.model.operations}
    assert {"numpy", "nn"} <= kinds  # the hard-swish survived as keras.ops nodes
    assert result.plan.removed["macs"] == pytest.approx(0.5, abs=0.05)
