"""bench/equal_macs.py: the ratio bisection and the MAC count read off a .tflite file.

The bench folder is no package, so the module is loaded from its file; it
imports neither torch nor (at module level) TensorFlow.
"""
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import tensorflow as tf
import tf_keras

import pipeline

_PATH = Path(__file__).resolve().parents[2] / "bench" / "equal_macs.py"
_SPEC = importlib.util.spec_from_file_location("bench_equal_macs", _PATH)
equal_macs = sys.modules[_SPEC.name] = importlib.util.module_from_spec(_SPEC)  # for dataclasses
_SPEC.loader.exec_module(equal_macs)


def staircase(step: float):
    """Removed fraction growing with the ratio in steps of ``step`` (an aligned tool)."""
    return lambda ratio: (math.floor(ratio ** 0.5 / step) * step, f"model at {ratio}")


def test_bisection_reaches_the_target_and_keeps_its_payload():
    result = equal_macs.bisect_ratio(staircase(0.001), target=0.5, tolerance=0.005)
    assert abs(result.removed - 0.5) <= 0.005
    assert result.payload == f"model at {result.ratio}"
    assert [round(r, 3) for r, _ in result.steps[:3]] == [0.095, 0.19, 0.285]  # the scan
    assert staircase(0.001)(result.ratio)[0] == result.removed


def test_a_step_wider_than_the_tolerance_gives_the_closest_ratio():
    result = equal_macs.bisect_ratio(staircase(0.2), target=0.5, tolerance=0.005, max_steps=12)
    assert len(result.steps) == 12
    assert result.removed in (0.4, 0.6)  # the stairs either side of 0.5
    assert abs(result.removed - 0.5) == min(abs(r - 0.5) for _, r in result.steps)


def test_a_fraction_that_falls_past_a_peak_is_searched_below_the_peak():
    """Torch-Pruning at round_to=32: past some ratio thin groups are left whole."""
    def peaked(ratio):
        return (ratio if ratio <= 0.6 else 0.6 - 2 * (ratio - 0.6)), None

    result = equal_macs.bisect_ratio(peaked, target=0.5, tolerance=0.001)
    assert abs(result.removed - 0.5) <= 0.001 and result.ratio < 0.6


def test_bisection_refuses_an_unreachable_target_and_a_bad_target():
    with pytest.raises(ValueError, match="the most was 0.0950"):
        equal_macs.bisect_ratio(lambda r: (r / 10, None), target=0.5)
    with pytest.raises(ValueError, match="not a fraction"):
        equal_macs.bisect_ratio(lambda r: (r, None), target=1.5)


def test_op_macs_in_tflite_layouts():
    assert equal_macs.op_macs([1, 7, 7, 16], [16, 3, 3, 8]) == 7 * 7 * 16 * 3 * 3 * 8
    assert equal_macs.op_macs([1, 7, 7, 8], [1, 3, 3, 8], depthwise=True) == 7 * 7 * 3 * 3 * 8
    assert equal_macs.op_macs([1, 1, 1, 1], [1, 1, 1, 5]) == 5  # one output channel, not depthwise
    assert equal_macs.op_macs([1, 10], [10, 32]) == 320
    with pytest.raises(ValueError, match="channels"):
        equal_macs.op_macs([1, 7, 7, 16], [8, 3, 3, 8])


def test_tflite_count_equals_the_keras_count(tmp_path):
    L = tf_keras.layers
    x = inputs = tf_keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(1, 1)(x)
    x = L.Flatten()(x)
    model = tf_keras.Model(inputs, L.Dense(10)(x))
    path = tmp_path / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    counted = equal_macs.tflite_macs(str(path))
    assert counted["macs"] == pipeline.count_macs(model)
    assert set(counted["by_op"]) == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert counted["uncounted"] == []
