"""Tests of pipeline.litert.timing: statistics of real LiteRT runs on a tiny model, inputs, pinning."""
import json
import os
import time

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras

from pipeline.litert import timing as profile

FAST = dict(min_runs=5, min_secs=0.02, warmup_runs=1)


def _tiny_model():
    inputs = tf_keras.Input((16, 16, 3))
    x = tf_keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(4)(x))


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(_tiny_model()).convert())
    return path


@pytest.fixture(scope="module")
def int8_tflite(tmp_path_factory):
    converter = tf.lite.TFLiteConverter.from_keras_model(_tiny_model())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [np.random.rand(1, 16, 16, 3).astype(np.float32)] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("profile") / "tiny_int8.tflite"
    path.write_bytes(converter.convert())
    return path


def test_statistics_per_thread_count_and_affinity_restored(tiny_tflite):
    before = os.sched_getaffinity(0)
    result = profile.profile_tflite(tiny_tflite, profile.ProfileConfig(threads=(1, 2), **FAST))

    assert os.sched_getaffinity(0) == before
    assert [s.threads for s in result.latencies] == [1, 2]
    for stats in result.latencies:
        assert stats.count >= 5
        assert 0 < stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.max_ms
        assert stats.std_ms >= 0
    assert result.latency(1).pinned_cpu in before  # the edge profile pins 1 thread...
    assert result.latency(2).pinned_cpu is None  # ...and leaves more threads free
    assert result.load_ms > 0
    assert result.memory_source == "VmHWM"
    assert result.peak_rss_mb >= result.rss_before_mb > 0


def test_to_dict_has_the_report_shape(tiny_tflite):
    result = profile.profile_tflite(tiny_tflite, profile.ProfileConfig(threads=(1, 2), **FAST))
    data = json.loads(json.dumps(result.to_dict()))

    assert set(data) == {"tflite", "xnnpack", "load_ms", "peak_rss_mb", "rss_before_mb",
                         "memory_source", "latency_ms", "latency_detail"}
    assert set(data["latency_ms"]) == {"1", "2"}
    for entry in data["latency_ms"].values():
        assert set(entry) == {"p50", "p90", "mean"}
        assert entry["p50"] <= entry["p90"]
    assert set(data["latency_detail"]["1"]) == {"std", "min", "max", "count", "pinned_cpu"}
    assert data["xnnpack"] is True


def test_runs_until_both_min_runs_and_min_secs(tiny_tflite):
    start = time.perf_counter()
    result = profile.profile_tflite(
        tiny_tflite, profile.ProfileConfig(threads=(1,), min_runs=1, min_secs=0.2, warmup_runs=0))
    assert time.perf_counter() - start >= 0.2
    assert result.latency(1).count > 1


def test_without_xnnpack(tiny_tflite):
    result = profile.profile_tflite(
        tiny_tflite, profile.ProfileConfig(threads=(1,), use_xnnpack=False, **FAST))
    assert result.to_dict()["xnnpack"] is False
    assert result.latency(1).count >= 5


def test_int8_input_model(int8_tflite):
    result = profile.profile_tflite(int8_tflite, profile.ProfileConfig(threads=(1,), **FAST))
    assert result.latency(1).p50_ms > 0


def test_time_interleaved_alternates_sessions():
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def run_ms(self):
            calls.append(self.name)
            return 1.0

    times = profile.time_interleaved([Fake("a"), Fake("b")], min_runs=7, min_secs=0.0)
    assert [len(t) for t in times] == [7, 7]
    assert calls == ["a", "b"] * 7


def test_pinning_is_restored_after_an_error():
    before = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError):
        with profile.pinned_to_one_cpu() as cpu:
            assert os.sched_getaffinity(0) == {cpu}
            raise RuntimeError("boom")
    assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("dtype,low,high", [(np.uint8, 0, 255), (np.int8, -128, 127),
                                            (np.float32, -1.0, 1.0)])
def test_random_input_matches_dtype_and_shape(dtype, low, high):
    detail = {"name": "x", "dtype": dtype, "shape": np.array([1, 8, 8, 3])}
    data = profile.random_input(detail, np.random.default_rng(0))
    assert data.dtype == dtype and data.shape == (1, 8, 8, 3)
    assert data.min() >= low and data.max() <= high


def test_random_input_rejects_other_dtypes():
    with pytest.raises(profile.ProfileError, match="'ids' has dtype int32"):
        profile.random_input({"name": "ids", "dtype": np.int32, "shape": [1, 4]},
                             np.random.default_rng(0))


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(profile.ProfileError, match="missing.tflite: file not found"):
        profile.profile_tflite(tmp_path / "missing.tflite")
    text = tmp_path / "notes.tflite"
    text.write_text("not a model")
    with pytest.raises(profile.ProfileError, match="notes.tflite: not a TFLite model"):
        profile.profile_tflite(text)


def test_config_is_validated():
    with pytest.raises(profile.ProfileError, match="threads"):
        profile.ProfileConfig(threads=(0,))
    with pytest.raises(profile.ProfileError, match="min_runs"):
        profile.ProfileConfig(min_runs=0)
    assert profile.ProfileConfig(threads=[1, "2"]).threads == (1, 2)
