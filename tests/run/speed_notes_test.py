"""The report's size and latency notes against the dense reference: measured, and claimed only
when paired timings separate the two files."""
import pytest
import tensorflow as tf
import tf_keras

from pipeline.run import speed_notes as speed
from pipeline.run.results import Measurement, PairedTiming


@pytest.fixture(scope="module")
def tflite_file(tmp_path_factory):
    inputs = tf_keras.Input((8,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(4)(inputs))
    path = tmp_path_factory.mktemp("speed") / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return str(path)


def result(accuracy=0.9):
    return Measurement(accuracy=accuracy, examples=10, seconds=0.1, latency_ms={})


def paired(ratios, mine=0.100, theirs=0.100, threads="1"):
    """A PairedTiming whose repeats gave these reference-over-variant p50 ratios."""
    ordered = sorted(ratios)
    cell = {"speedup": ordered[len(ordered) // 2], "speedup_min": ordered[0],
            "speedup_max": ordered[-1], "p50_ms": mine, "p50_range_ms": [mine * 0.99, mine * 1.01],
            "reference_p50_ms": theirs, "reference_p50_range_ms": [theirs * 0.99, theirs * 1.01]}
    return PairedTiming("d", len(ratios), {threads: cell})


def latency_notes(notes):
    return [n for n in notes if "thread(s)" in n]


@pytest.mark.parametrize("ratios, expected", [
    ((1.05, 1.10, 1.12, 1.08, 1.09), "faster"),
    ((0.80, 0.85, 0.90, 0.86, 0.83), "slower"),
    ((0.97, 1.01, 1.04, 0.99, 1.00), None),  # straddles 1.0
    ((1.01, 1.015, 1.01, 1.012, 1.018), None),  # all above 1, but within the 2% margin
    ((1.30, 1.40, 0.99, 1.35, 1.32), None),  # one repeat disagrees
])
def test_verdict_needs_every_paired_ratio_beyond_the_margin(ratios, expected):
    assert speed.verdict(min(ratios), max(ratios)) == expected


def test_straddling_ratios_say_no_measurable_difference_with_both_figures(tflite_file):
    notes = speed.compare("s", result(), tflite_file, "d", result(), tflite_file,
                          paired((0.97, 1.01, 1.04, 0.99, 1.00), 0.118, 0.119))
    (note,) = latency_notes(notes)
    assert note.startswith("no measurable difference (neither faster nor slower than d) at "
                           "1 thread(s): p50 0.118 ms (0.117-0.119) vs 0.119 ms (0.118-0.120)")
    assert note.endswith("d's p50 over this one's 0.97-1.04 over 5 interleaved repeats")
    assert "file" in notes[0] and "100% of d" in notes[0]


def test_separated_ratios_say_faster_or_slower(tflite_file):
    (faster,) = latency_notes(speed.compare(
        "s", result(), tflite_file, "d", result(), tflite_file,
        paired((1.9, 2.0, 2.1, 2.0, 1.95), 0.05, 0.10)))
    assert faster.startswith("2.00x faster than d at 1 thread(s): p50 0.050 ms")
    assert "1.90-2.10 over 5 interleaved repeats" in faster
    (slower,) = latency_notes(speed.compare(
        "s", result(), tflite_file, "d", result(), tflite_file,
        paired((0.5, 0.5, 0.5, 0.5, 0.5), 0.2, 0.1)))
    assert slower.startswith("2.00x slower than d at 1 thread(s)")


def test_unmeasured_latency_is_said(tflite_file):
    notes = speed.compare("s", result(0.5), tflite_file, "d", result(0.6), tflite_file, None)
    assert "latency not measured (evaluate.latency_threads is empty)" in notes
    assert "test accuracy 0.5000 vs d 0.6000" in notes


def test_two_identical_files_timed_side_by_side_show_no_measurable_difference(tflite_file):
    """Real paired timings of one file against itself: no claim either way.

    Nine repeats: all nine ratios beyond the 2% margin on one side by chance
    is below 1 in 256.
    """
    latency = speed.time_paired(tflite_file, tflite_file, (1,), 0.05, repeats=9)
    cell = latency["1"]
    assert cell["speedup_min"] <= cell["speedup"] <= cell["speedup_max"]
    assert cell["p50_ms"] > 0 and cell["reference_p50_ms"] > 0
    assert speed.latency_note("d", "1", cell, 9).startswith(
        "no measurable difference (neither faster nor slower than d) at 1 thread(s): p50 ")
