"""A model that oneDNN cannot train goes through the command line: the run restarts itself once.

The model file holds a 1x1 stride-2 Conv2D on 8 channels at 56x56, the layer
TF 2.21's oneDNN kernels crash on in training (pipeline/training/traps.py).
With oneDNN on, the first fine-tune refuses it; the run replaces itself by
the same command with ``TF_ENABLE_ONEDNN_OPTS=0``, keeps the finished
stages and ends with exit status 0.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tf_keras
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES = 3


def _trap_model(path):
    layers = tf_keras.layers
    inputs = tf_keras.Input((56, 56, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    x = layers.Conv2D(16, 1, strides=2, name="proj")(x)  # the trap
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="body")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, layers.Dense(CLASSES, activation="softmax")(x))
    model.save(path)


def _image_folder(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 6)):
        for c in range(CLASSES):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 60, (56, 56), np.uint8) + 60 * c
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.mark.slow
def test_trap_model_runs_end_to_end_with_one_restart(tmp_path):
    _trap_model(tmp_path / "trap.keras")
    data = _image_folder(tmp_path / "images")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    command = [sys.executable, "-m", "pipeline.main", f"--config={ROOT}/configs/default.py:quick",
               f"--workdir={tmp_path / 'run'}", f"--config.model.path={tmp_path / 'trap.keras'}",
               "--config.model.input_size=56", "--config.model.channels=1",
               "--config.data.name=folder", f"--config.data.dir={data}",
               "--config.data.subset=0", "--config.data.test_subset=0", "--config.data.flip=False",
               "--config.prune.round_to=1", "--config.sensitivity.enabled=False",
               "--config.export.variants=('pruned_fp32',)", "--config.evaluate.latency_threads=()",
               "--restart"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("restarting with TF_ENABLE_ONEDNN_OPTS=0") == 1
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [v["name"] for v in report["variants"]] == ["pruned_fp32"]
    assert os.path.exists(tmp_path / "run" / "tflite" / "pruned_fp32.tflite")
