"""pipeline.latency.table: cost layers, their grids, the table file, interpolation, the cache.

Nothing here is timed: where the builder would time single-layer models,
``measure.time_points`` is replaced by a fake that prices a flatbuffer by its
size (wider layers are bigger, hence "slower").
"""
import json

import pytest
import tf_keras

import pipeline
from latency_synthetic import chain, setup, synthetic
from pipeline.latency import measure as latency_measure
from pipeline.latency import table as latency_table
from pipeline.latency.table import LatencyTable, LatencyTableError

L = tf_keras.layers
FAST = latency_measure.Timing(point_runs=3, point_secs=0.0, model_runs=3, model_secs=0.0,
                              warmup_runs=1)


class FakePoints:
    """Stands in for ``measure.time_points``: 1 ms per 100 kB of flatbuffer, calls counted."""

    def __init__(self):
        self.calls = []

    def __call__(self, blobs, timing=latency_measure.Timing()):
        self.calls.append((len(blobs), timing))
        return [len(blob) / 1e5 for blob in blobs]


@pytest.fixture
def fake_points(monkeypatch):
    fake = FakePoints()
    monkeypatch.setattr(latency_measure, "time_points", fake)
    return fake


def test_table_builder_measures_every_point_and_caches(tmp_path, monkeypatch, fake_points):
    model = chain((16, 32), size=16)
    analysis, _, _, layers = setup(model)
    assert [l.name for l in layers] == ["conv0", "conv1", "head"]
    config = pipeline.LatencyConfig(cache_dir=str(tmp_path), timing=FAST)
    table = latency_table.table_for(analysis, layers, config)
    for layer in layers:
        for point in layer.points():
            assert table.has(layer.key, point)
        assert layer.full in layer.points()
        assert table.layer_ms(layer.key, *layer.full) > 0
    assert len(fake_points.calls) == 3  # one timing call per distinct layer, all its points
    assert all(timing == FAST for _, timing in fake_points.calls)
    assert layers[1].in_grid[0] == 8 and layers[1].in_grid[-1] == 16  # lane-aligned, floor 8
    assert set(layers[1].in_grid) <= {8, 12, 14, 16}
    path = tmp_path / latency_measure.host_device() / f"{latency_table.architecture(analysis)}.json"
    assert path.is_file()
    again = LatencyTable.from_json(path.read_text())
    assert again.layers == table.layers and again.model_ms == table.model_ms

    def no_timing(*args, **kwargs):
        raise AssertionError("a cached table was measured again")
    monkeypatch.setattr(latency_measure, "time_points", no_timing)
    cached = latency_table.table_for(analysis, layers, config)
    assert cached.layers == table.layers


def test_an_unreadable_cache_is_measured_again(tmp_path, fake_points):
    model = chain((16,))
    analysis, _, _, layers = setup(model)
    config = pipeline.LatencyConfig(cache_dir=str(tmp_path), timing=FAST)
    path = tmp_path / latency_measure.host_device() / f"{latency_table.architecture(analysis)}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    table = latency_table.table_for(analysis, layers, config)
    assert fake_points.calls and all(table.has(l.key, l.full) for l in layers)
    assert LatencyTable.from_json(path.read_text()).layers == table.layers


def test_without_a_cache_dir_nothing_is_written(tmp_path, fake_points, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = chain((16,))
    analysis, _, _, layers = setup(model)
    latency_table.table_for(analysis, layers, pipeline.LatencyConfig(timing=FAST))
    assert list(tmp_path.iterdir()) == []


def test_identical_layers_share_one_entry():
    model = chain((16, 16, 16))
    _, _, _, layers = setup(model)
    assert layers[1].key == layers[2].key != layers[0].key


def test_architecture_ignores_names_and_weights():
    a, b = chain((16, 8), name="a"), chain((16, 8), name="b")
    b.set_weights([w * 2 for w in b.get_weights()])
    assert (latency_table.architecture(pipeline.analyse(a))
            == latency_table.architecture(pipeline.analyse(b)))
    assert (latency_table.architecture(pipeline.analyse(chain((16, 12))))
            != latency_table.architecture(pipeline.analyse(a)))


def test_depthwise_layer_is_tied_and_single_curve():
    tf_keras.utils.set_random_seed(0)
    x = inputs = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(32, 1, name="expand")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(8, 1, name="project")(L.ReLU()(x))
    model = tf_keras.Model(inputs, L.GlobalAveragePooling2D()(x))
    _, _, _, layers = setup(model)
    dw = next(l for l in layers if l.name == "dw")
    assert dw.tied and all(i == o for i, o in dw.points())


@pytest.mark.parametrize("n, lane", [(1, 1), (7, 1), (8, 4), (15, 4), (16, 8), (63, 8),
                                     (64, 16), (512, 16)])
def test_lane_width(n, lane):
    assert latency_table.lane_width(n) == lane


def test_wide_axes_are_measured_at_the_grid_fractions():
    """256 channels narrowing to 16 (the allocator's floor): the grid's fractions of 16..256."""
    model = chain((256,))
    _, _, _, layers = setup(model)
    conv = layers[0]
    # 1, .875, .75, .5, .25, 0 of the range, snapped to multiples of 16.
    assert conv.out_grid == (16, 80, 128, 192, 224, 256)
    assert conv.in_grid == (4,)  # the model's input is never pruned
    assert layers[1].in_grid == conv.out_grid


def test_interpolation_is_separable_product():
    model = chain((32, 32))
    _, _, _, layers = setup(model)
    table = synthetic(layers, lambda l, i, o: 1e-3 * i * o)
    conv = layers[1]
    assert table.layer_ms(conv.key, 16, 8) == pytest.approx(1e-3 * 16 * 8)
    assert table.layer_ms(conv.key, 20, 28) == pytest.approx(1e-3 * 20 * 28, rel=1e-6)


def test_table_json_round_trips():
    model = chain((32, 32))
    _, _, _, layers = setup(model)
    table = synthetic(layers, lambda l, i, o: 1e-3 * i * o + 0.01, model_ms=2.5)
    again = LatencyTable.from_json(table.to_json())
    assert again.to_json() == table.to_json()
    assert again.model_ms == 2.5 and again.device == "synthetic"
    assert again.layer_ms(layers[1].key, 20, 12) == table.layer_ms(layers[1].key, 20, 12)


def test_an_entry_without_its_full_point_is_refused():
    model = chain((32,))
    _, _, _, layers = setup(model)
    table = synthetic(layers, lambda l, i, o: 1e-3 * i * o)
    conv = layers[0]
    entry = table.layers[conv.key]
    entry["points"] = [p for p in entry["points"] if (p[0], p[1]) != conv.full]
    with pytest.raises(LatencyTableError, match="no point at its full widths"):
        LatencyTable.from_json(table.to_json()).layer_ms(conv.key, 8, 8)


def test_bad_table_files_raise(tmp_path):
    with pytest.raises(LatencyTableError, match="format"):
        LatencyTable.from_json(json.dumps({"format": 99}))
    with pytest.raises(LatencyTableError, match="not a latency table"):
        LatencyTable.from_json("[1, 2]")
    model = chain((16,))
    analysis, _, _, layers = setup(model)
    path = tmp_path / "phone.json"
    path.write_text(LatencyTable("phone", {}).to_json())
    with pytest.raises(LatencyTableError, match="no entry for 2 layer"):
        latency_table.table_for(analysis, layers, pipeline.LatencyConfig(table=str(path)))
    with pytest.raises(LatencyTableError, match="missing.json"):
        latency_table.table_for(analysis, layers,
                                pipeline.LatencyConfig(table=str(tmp_path / "missing.json")))
