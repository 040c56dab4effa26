"""The sensitivity scan: one point per group and ratio, ratio 0 is the baseline, reruns skip."""

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras
from configs import default
from pipeline.pruning import sensitivity
from pipeline.pruning.channels import analyse
from pipeline.errors import PruningError
from pipeline.pruning.rebuild import rebuild
from pipeline.pruning.selection import Constraints, select_fixed

L = tf_keras.layers
RATIOS = (0.25, 0.5, 0.75)


def tiny_cnn():
    tf_keras.utils.set_random_seed(0)
    x = inp = tf_keras.Input((8, 8, 1))
    for i, width in enumerate((8, 12)):
        x = L.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(16, activation="relu", name="fc")(x)
    return tf_keras.Model(inp, L.Dense(4, activation="softmax", name="out")(x))


def batches(n=96, batch=32, seed=0):
    """A learnable 4-class task: each class brightens one quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 8, 8, 1)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 1.0
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


@pytest.fixture(scope="module")
def trained():
    model = tiny_cnn()
    model.compile(tf_keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # Enough steps for BatchNorm's moving statistics (momentum 0.99) to settle.
    model.fit(batches(512, seed=1), epochs=20, verbose=0)
    return model


def test_one_point_per_group_and_ratio(trained):
    curves = sensitivity.scan(trained, batches(), RATIOS, progress=None)
    groups = analyse(trained).groups
    assert set(curves.groups) == {g.name for g in groups}
    assert curves.examples == 96
    for g in groups:
        points = curves.groups[g.name]
        assert [p["ratio"] for p in points] == [0.0, *RATIOS]
        assert all(0.0 <= p["accuracy"] <= 1.0 for p in points)
        # floor(ratio * size) of this group's channels go, and only this group's.
        assert [p["kept"] for p in points] == [g.size - int(r * g.size) for r in (0, *RATIOS)]
        removed = [p["macs_removed"] for p in points]
        assert removed[0] == 0.0 and removed == sorted(removed) and removed[-1] > 0
        assert curves.sizes[g.name] == g.size


def test_ratio_zero_is_the_baseline_accuracy(trained):
    curves = sensitivity.scan(trained, batches(), RATIOS, progress=None)
    trained.compile(metrics=["accuracy"], loss="sparse_categorical_crossentropy")
    keras_accuracy = trained.evaluate(batches(), verbose=0, return_dict=True)["accuracy"]
    assert curves.baseline_accuracy == pytest.approx(keras_accuracy, abs=1e-6)
    assert all(p[0]["accuracy"] == curves.baseline_accuracy for p in curves.groups.values())
    assert curves.baseline_accuracy > 0.5  # the task was learnt, so drops are meaningful
    # The scan's own path (select, rebuild, measure) removing nothing gives the same number.
    analysis = analyse(trained)
    nothing = select_fixed(analysis, {g.name: np.ones(g.size) for g in analysis.groups},
                           Constraints(ratios=(("conv0", 0.0),)))
    same = rebuild(trained, analysis, analysis.keep_mask(nothing.kept))
    assert sensitivity.accuracy(same, list(batches())) == curves.baseline_accuracy


def test_max_batches_limits_the_images(trained):
    curves = sensitivity.scan(trained, batches(), (0.5,), max_batches=2, progress=None)
    assert curves.examples == 64


def test_bad_ratio_and_empty_split_are_refused(trained):
    in_range = "pass ratios=<fractions, each in \\(0, 1\\)>"
    with pytest.raises(PruningError, match=in_range) as error:
        sensitivity.scan(trained, batches(), (0.5, 1.0), progress=None)
    assert error.value.argument == "ratios" and "config" not in str(error.value)
    with pytest.raises(PruningError, match="empty validation split.*pass dataset=") as error:
        sensitivity.scan(trained, batches().take(0), (0.5,), progress=None)
    assert error.value.argument == "dataset" and "config" not in str(error.value)


def test_progress_counts_points(trained):
    lines = []
    sensitivity.scan(trained, batches(), (0.5,), progress=lines.append)
    groups = len(analyse(trained).groups)
    assert len(lines) == groups
    assert lines[-1].startswith(f"{groups}/{groups} ") and "s left" in lines[-1]


@pytest.mark.parametrize("key, value, message", [
    ("sensitivity.ratios", (0.5, 1.0), "config.sensitivity.ratios holds 1.0"),
    ("sensitivity.max_batches", -1, "config.sensitivity.max_batches=-1 must be >= 0"),
    ("finetune.iterations", 0, "config.finetune.iterations=0 must be >= 1"),
])
def test_config_check_names_the_bad_key(key, value, message):
    from pipeline.run import config_check
    config = default.get_config("quick")
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(config_check.ConfigError, match=message.replace(".", "\\.")):
        config_check.check(config)


def test_one_group_narrowed_far_where_the_ratios_override_cannot(trained):
    # plan_pruning(ratio=0, ratios={group: 0.9}) checks the overall target too and refuses
    # a large group cut by 90%; select_fixed (what the scan uses) narrows just that group.
    with pytest.raises(pipeline.TargetError):
        pipeline.plan_pruning(trained, 0.0, target="filters", ratios={"fc": 0.9})
    analysis = analyse(trained)
    scores = {g.name: np.arange(g.size, dtype=float) for g in analysis.groups}
    chosen = select_fixed(analysis, scores, Constraints(ratios=(("fc", 0.9),)))
    assert {n: len(k) for n, k in chosen.kept.items()} == {"conv0": 8, "conv1": 12, "fc": 2}
    assert list(chosen.kept["fc"]) == [14, 15]  # the two highest scores survive
