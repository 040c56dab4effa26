"""The prune and fine-tune stages re-estimate BatchNorm statistics per
``finetune.bn_recalibrate_batches``: stamped in the records, part of the keys."""
import json

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from configs import default
from pipeline.data import datasets as data
from pipeline.run import config_check, stages
from pipeline.run.results import ModelRecord, ModelResult
from pipeline.run.store import Store

L = tf_keras.layers
IMAGES = np.random.default_rng(0).normal(size=(64, 8, 8, 1)).astype(np.float32)


def small_cnn():
    tf_keras.utils.set_random_seed(0)
    x = inp = tf_keras.Input((8, 8, 1))
    for i, width in enumerate((16, 24)):
        x = L.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    x = L.Dense(32, activation="relu", name="fc")(L.Flatten(name="flat")(x))
    return tf_keras.Model(inp, L.Dense(4, activation="softmax", name="out")(x))


def loaded():
    """64 random images in batches of 32; the training split repeats them."""
    labels = np.random.default_rng(1).integers(0, 4, 64)
    batches = tf.data.Dataset.from_tensor_slices((IMAGES, labels)).batch(32)
    return stages.Data(data.Datasets(
        train=batches.repeat(), val=batches, test=batches, calibration=batches.unbatch(),
        input_shape=(8, 8, 1), class_names=("a", "b", "c", "d"),
        sizes={"train": 64, "val": 64, "test": 64}, steps_per_epoch=2), "data-key")


def config(batches):
    c = default.get_config("quick")
    c.finetune.epochs, c.finetune.patience = 1, 0
    c.prune.round_to = 1  # the 8x8 test CNN's layers are too narrow for steps of 16
    c.finetune.bn_recalibrate_batches = batches
    return c


def pruning_with(batches, workdir):
    c = config(batches)
    base = ModelResult(small_cnn(), "baseline.keras", "base-key", ModelRecord(0.0, 0, 0))
    return stages.prune_and_finetune(c.prune, c.finetune, base, loaded(), Store(str(workdir)),
                                     seed=c.seed)


@pytest.fixture(scope="module")
def on_and_off(tmp_path_factory):
    return (pruning_with(2, tmp_path_factory.mktemp("on")),
            pruning_with(0, tmp_path_factory.mktemp("off")))


def test_both_records_and_stamps_say_how_many_batches(on_and_off, tmp_path):
    on, off = on_and_off
    assert (on.pruned.record.bn_batches, on.tuned.record.bn_batches) == (2, 2)
    assert (off.pruned.record.bn_batches, off.tuned.record.bn_batches) == (0, 0)
    workdir = tmp_path / "stamped"
    pruning_with(3, workdir)
    for name in ("pruned_initial.keras", "pruned.keras"):
        stamp = json.loads((workdir / f"{name}.stamp.json").read_text())
        assert stamp["record"]["bn_batches"] == 3, name


def test_the_setting_is_part_of_both_keys(on_and_off):
    on, off = on_and_off
    assert on.pruned.key != off.pruned.key and on.tuned.key != off.tuned.key


def test_the_tuned_models_statistics_are_those_of_the_training_batches(on_and_off):
    on, off = on_and_off
    # bn0 sees conv0's output: re-estimated after fine-tuning, its moving mean is that
    # output's mean over two training batches (all 64 images), with the final weights.
    for pruning, matches in ((on, True), (off, False)):
        model = pruning.tuned.model
        conv = tf_keras.Model(model.input, model.get_layer("conv0").output)
        expected = conv(IMAGES).numpy().mean(axis=(0, 1, 2))
        assert np.allclose(model.get_layer("bn0").moving_mean.numpy(), expected,
                           atol=1e-4) == matches


def test_changing_the_setting_redoes_both_stages(tmp_path, capsys):
    pruning_with(2, tmp_path)
    capsys.readouterr()
    pruning_with(2, tmp_path)
    assert "[finetune] up to date" in capsys.readouterr().out
    pruning_with(1, tmp_path)
    out = capsys.readouterr().out
    assert "up to date" not in out
    assert "re-estimated on 1 training batches" in out


def test_a_negative_count_is_a_config_error():
    c = config(-1)
    with pytest.raises(config_check.ConfigError,
                       match=r"config.finetune: .*bn_recalibrate_batches >= 0"):
        config_check.check(c)
