"""The report's size and latency notes against the dense reference: measured, either way."""
import pytest
import tensorflow as tf
import tf_keras

from pipeline.run import speed_notes as speed
from pipeline.run.results import Measurement


@pytest.fixture(scope="module")
def tflite_file(tmp_path_factory):
    inputs = tf_keras.Input((8,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(4)(inputs))
    path = tmp_path_factory.mktemp("speed") / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return str(path)


def result(p50, accuracy=0.9):
    latency = {"1": {"p50": p50, "p90": p50, "mean": p50}} if p50 is not None else {}
    return Measurement(accuracy=accuracy, examples=10, seconds=0.1, latency_ms=latency)


def test_no_faster_is_said(tflite_file):
    notes = speed.compare("s", result(0.118), tflite_file, "d", result(0.118), tflite_file)
    assert "file" in notes[0] and "100% of d" in notes[0]
    assert "no faster than d on this CPU at 1 thread(s): p50 0.118 ms vs 0.118 ms" in notes


def test_a_real_speed_up_is_said(tflite_file):
    notes = speed.compare("s", result(0.05), tflite_file, "d", result(0.10), tflite_file)
    assert "2.00x faster than d at 1 thread(s): p50 0.050 ms vs 0.100 ms" in notes


def test_unmeasured_latency_is_said(tflite_file):
    notes = speed.compare("s", result(None, 0.5), tflite_file, "d", result(None, 0.6),
                          tflite_file)
    assert "latency not measured (evaluate.latency_threads is empty)" in notes
    assert "test accuracy 0.5000 vs d 0.6000" in notes
