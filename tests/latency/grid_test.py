"""pipeline.latency.grid: export a model's table grid, assemble device logs into a table.

The "device" logs are written by the tests in benchmark_model's format, so
nothing is timed.
"""
import json
import os

import pytest

import pipeline
from latency_synthetic import chain
from pipeline.latency import grid as latency_grid
from pipeline.latency import table as latency_table
from pipeline.latency.table import LatencyTableError

LOG = ("Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, "
       "Inference (avg): {}\n")


def write_logs(out_dir, files, us):
    """``<stem>_threads1.log`` for each file, its average inference ``us(file)`` microseconds."""
    for name in files:
        stem = os.path.splitext(name)[0]
        (out_dir / f"{stem}_threads1.log").write_text(LOG.format(us(name)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("grid")
    model = chain((16, 16))
    manifest = json.loads(open(latency_grid.export_grid(model, str(out_dir))).read())
    return model, out_dir, manifest


def test_device_grid_export_and_assemble(exported, tmp_path):
    model, out_dir, manifest = exported
    assert manifest["points"] and (out_dir / "model.tflite").is_file()
    by_file = {p["file"]: p for p in manifest["points"]}
    write_logs(out_dir, ["model.tflite"] + list(by_file),
               lambda name: 100 + by_file.get(name, {}).get("c_out", 0))
    table = latency_grid.assemble(str(out_dir), "phone")
    assert table.model_ms == pytest.approx(0.1) and table.device == "phone"
    path = tmp_path / "phone.json"
    path.write_text(table.to_json())
    result = pipeline.prune(model, 0.1, target="latency",
                            latency=pipeline.LatencyConfig(table=str(path)))
    assert result.plan.report["device"] == "phone"


def test_the_manifest_lists_every_table_point_once(exported):
    model, out_dir, manifest = exported
    analysis = pipeline.analyse(model)
    assert manifest["model"] == latency_table.architecture(analysis)
    files = [p["file"] for p in manifest["points"]]
    assert len(files) == len(set(files))
    for p in manifest["points"]:
        assert p["file"] == f"{p['key']}__{p['c_in']}x{p['c_out']}.tflite"
        assert (out_dir / p["file"]).is_file()
        assert [p["c_in"], p["c_out"]] != [0, 0] and len(p["full"]) == 2


def test_points_without_a_log_are_left_out(exported, tmp_path):
    _, out_dir, manifest = exported
    (tmp_path / "manifest.json").write_text((out_dir / "manifest.json").read_text())
    first = manifest["points"][0]
    write_logs(tmp_path, ["model.tflite", first["file"]], lambda name: 2000)
    table = latency_grid.assemble(str(tmp_path), "phone")
    assert table.model_ms == pytest.approx(2.0)
    assert table.layers == {first["key"]: {"class": first["class"], "full": first["full"],
                                           "tied": first["tied"],
                                           "points": [[first["c_in"], first["c_out"], 2.0]]}}


def test_assemble_explains_what_is_missing(tmp_path):
    with pytest.raises(LatencyTableError, match="run `python -m pipeline.latency.grid export`"):
        latency_grid.assemble(str(tmp_path), "phone")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "model": "m", "points": []}))
    with pytest.raises(LatencyTableError, match="no log of model.tflite"):
        latency_grid.assemble(str(tmp_path), "phone")


def test_the_command_line_assembles_a_table(exported, tmp_path, capsys):
    _, out_dir, manifest = exported
    write_logs(out_dir, ["model.tflite"] + [p["file"] for p in manifest["points"]],
               lambda name: 500)
    table = tmp_path / "phone.json"
    argv = latency_grid.parse_argv(["latency_grid", "assemble", f"--out_dir={out_dir}",
                                    "--device=pixel", f"--table={table}"])
    assert latency_grid.main(argv) == 0
    assert latency_table.LatencyTable.from_json(table.read_text()).device == "pixel"
    assert capsys.readouterr().out.startswith(f"{table}: ")
    argv = latency_grid.parse_argv(["latency_grid", "assemble", f"--out_dir={out_dir}"])
    assert latency_grid.main(argv) == 1
    assert "latency_grid: error: give `export --model=M`" in capsys.readouterr().err


def test_the_export_command_takes_a_keras3_file(tmp_path):
    """``--model=`` a Keras 3 .keras file: loaded in Keras 3 (from its metadata), grid written."""
    import subprocess
    import sys
    import keras
    i = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(i)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c2")(x)
    keras.Model(i, keras.layers.GlobalAveragePooling2D()(x)).save(tmp_path / "m.keras")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "pipeline.latency.grid", "export",
                           f"--model={tmp_path / 'm.keras'}", f"--out_dir={tmp_path / 'g'}"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["points"] and (tmp_path / "g" / "model.tflite").is_file()
    assert all((tmp_path / "g" / p["file"]).is_file() for p in manifest["points"])
