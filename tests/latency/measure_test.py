"""pipeline.latency.measure: single-layer models, conversion, and the timing schedule.

The schedule (alternating blocks, warm-ups, the fastest run reported) is
checked with fake LiteRT sessions and a fake file timer, so it is exact and
fast; the one test that times real flatbuffers on this CPU is marked slow.
"""
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import pipeline
from latency_synthetic import chain
from pipeline.latency import measure
from pipeline.litert import timing as litert_timing

L = tf_keras.layers
FAST = measure.Timing(point_runs=3, point_secs=0.0, model_runs=3, model_secs=0.0, warmup_runs=1)


def node_and_handler(model, name):
    layer = next(l for l in pipeline.analyse(model).layers if l.node.name == name)
    return layer.node, layer.handler


def test_host_device_is_a_file_name():
    device = measure.host_device()
    assert re.fullmatch(r"[a-z0-9.-]+", device), device
    assert device.startswith("host-") and device.endswith("-1thread-xnnpack")
    assert measure.host_device() == device


def test_low_is_the_fastest_run():
    assert measure.low(np.array([3.0, 1.5, 2.0])) == 1.5


def test_single_layer_model_is_the_layer_narrowed():
    model = chain((16, 12), size=8)
    node, handler = node_and_handler(model, "conv1")
    one = measure.single_layer_model(node, handler, 6, 5)
    assert one.input_shape == (1, 8, 8, 6) and one.output_shape == (1, 8, 8, 5)
    (layer,) = [l for l in one.layers if isinstance(l, L.Conv2D)]
    assert layer.name == "op" and layer.get_config()["activation"] == "relu"  # stays fused
    assert layer.kernel.shape == (1, 1, 6, 5)


def test_single_layer_model_of_a_depthwise_conv_follows_its_input():
    x = inputs = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(16, 1, name="expand")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    model = tf_keras.Model(inputs, L.GlobalAveragePooling2D()(x))
    node, handler = node_and_handler(model, "dw")
    one = measure.single_layer_model(node, handler, 8, 16)
    assert one.input_shape == (1, 8, 8, 8) and one.output_shape == (1, 8, 8, 16)


def test_to_tflite_gives_a_flatbuffer():
    blob = measure.to_tflite(chain((8,)))
    assert blob[4:8] == b"TFL3"


def test_to_tflite_failure_names_the_model(monkeypatch):
    class Refusing:
        def convert(self):
            raise RuntimeError("op not supported")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_keras_model",
                        staticmethod(lambda model: Refusing()))
    with pytest.raises(pipeline.PruningError, match="cannot convert model 'chain'.*op not supp"):
        measure.to_tflite(chain((8,)))


class FakeSessions:
    """Fake ``litert.timing`` sessions: run k of file f takes 10 * f + k ms; events logged."""

    def __init__(self):
        self.events = []
        self.pinned = 0

    def session(self, path, threads):
        log, index = self.events, int(os.path.basename(path)[1])
        assert threads == 1

        class Session:
            runs = 0

            def warm_up(self, runs):
                log.append(("warm", index, runs))

            def run_ms(self):
                self.runs += 1
                log.append(("run", index))
                return 10.0 * index + self.runs
        return Session()

    def pinned_to_one_cpu(self):
        fake = self

        class Pinned:
            def __enter__(self):
                fake.pinned += 1
                return 0

            def __exit__(self, *exc):
                return False
        return Pinned()


@pytest.fixture
def fake_sessions(monkeypatch):
    fake = FakeSessions()
    monkeypatch.setattr(litert_timing, "Session", fake.session)
    monkeypatch.setattr(litert_timing, "pinned_to_one_cpu", fake.pinned_to_one_cpu)
    return fake


def test_time_files_alternates_warm_blocks(fake_sessions, tmp_path):
    paths = [str(tmp_path / f"p{i}.tflite") for i in range(2)]
    times = measure.time_files(paths, FAST, runs=7, secs=0.0)
    per_block = -(-7 // measure.BLOCKS)  # 3 runs in each of the 3 blocks
    assert fake_sessions.pinned == 1
    expected = []
    for _ in range(measure.BLOCKS):
        for index in (0, 1):
            expected += [("warm", index, FAST.warmup_runs)] + [("run", index)] * per_block
    assert fake_sessions.events == expected
    for index, series in enumerate(times):
        np.testing.assert_array_equal(series, 10.0 * index + np.arange(1, 10))


def test_time_points_reports_each_blob_fastest_run(fake_sessions):
    assert measure.time_points([b"a", b"b", b"c"], FAST) == [1.0, 11.0, 21.0]


class FakeFileTimer:
    """Stands in for ``measure.time_files``: a file's runs take its size in kB, plus 0..2 ms."""

    def __init__(self):
        self.calls, self.sizes = [], []

    def __call__(self, paths, timing, runs, secs):
        self.calls.append(([os.path.basename(p) for p in paths], runs, secs))
        self.sizes.append([os.path.getsize(p) for p in paths])
        return [os.path.getsize(p) / 1e3 + np.array([2.0, 0.0, 1.0]) for p in paths]


def test_model_timer_compares_against_the_original(monkeypatch):
    fake = FakeFileTimer()
    monkeypatch.setattr(measure, "time_files", fake)
    model, narrow = chain((64, 64)), chain((32, 32))
    timer = measure.ModelTimer(model, FAST)
    directory = timer._dir
    try:
        full = timer.full_ms()
        result = timer.compare(narrow)
    finally:
        timer.close()
    assert fake.calls == [(["full.tflite"], FAST.model_runs, FAST.model_secs),
                          (["full.tflite", "pruned.tflite"], FAST.model_runs, FAST.model_secs)]
    (full_size,), (again, narrow_size) = fake.sizes
    assert result.full_ms == full == pytest.approx(full_size / 1e3) == pytest.approx(again / 1e3)
    assert result.pruned_ms == pytest.approx(narrow_size / 1e3)
    assert result.ratio == pytest.approx(result.pruned_ms / result.full_ms) and result.ratio < 1
    assert not os.path.exists(directory)


@pytest.mark.slow
def test_real_timing_on_this_cpu():
    """LiteRT really runs: positive times, and a model four times narrower is faster."""
    model = chain((64, 64), size=32, kernel=3)
    node, handler = node_and_handler(model, "conv1")
    blobs = [measure.to_tflite(measure.single_layer_model(node, handler, 64, w))
             for w in (16, 64)]
    narrow_ms, full_ms = measure.time_points(blobs, FAST)
    assert 0 < narrow_ms and 0 < full_ms
    timer = measure.ModelTimer(model)
    try:
        result = timer.compare(chain((16, 16), size=32, kernel=3))
    finally:
        timer.close()
    assert 0 < result.pruned_ms < result.full_ms
