"""A latency table measured on a device: export the grid's models, then assemble the logs.

Two subcommands:
  python -m pipeline.latency.grid export --model=M.keras --out_dir=grid [--min_filters=1]
  python -m pipeline.latency.grid assemble --out_dir=grid --device=pixel7 --table=phone.json

``export`` writes one single-layer ``.tflite`` per table point
(``<signature>__<c_in>x<c_out>.tflite``), the whole model as ``model.tflite``
and ``manifest.json`` (which file is which point). Run TFLite's
``benchmark_model`` on the device for each file (``python -m pipeline.android
run --tflite=F --threads=1 --out_dir=grid`` saves ``<stem>_threads1.log``
beside it; loop over the files). ``assemble`` parses those logs (the average
inference time) into the table JSON that ``prune.latency.table`` /
``LatencyConfig(table=...)`` reads. A point without a log is left out; a
layer needs at least its full-width point.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
from absl import app, flags

from pipeline import atomic
from pipeline import cli, keras_api
from pipeline.latency import measure as latency_measure
from pipeline.latency import table as latency_table
from pipeline.pruning import selection
from pipeline.android.log import parse_log
from pipeline.pruning.channels import analyse
from pipeline.errors import PruningError
from pipeline.latency.allocate import Allocator

FLAGS = flags.FlagValues()
flags.DEFINE_string("model", None, "export: the .keras/.h5 model to be pruned.", flag_values=FLAGS)
flags.DEFINE_string("out_dir", "latency_grid", "Grid directory (models, manifest, logs).",
                    flag_values=FLAGS)
flags.DEFINE_integer("min_filters", 1, "export: as prune.min_filters.", flag_values=FLAGS)
flags.DEFINE_integer("round_to", 1, "export: as prune.round_to.", flag_values=FLAGS)
flags.DEFINE_list("ignore", [], "export: as prune.ignore.", flag_values=FLAGS)
flags.DEFINE_string("device", None, "assemble: the device's name, recorded in the table.",
                    flag_values=FLAGS)
flags.DEFINE_string("table", None, "assemble: the table JSON to write.", flag_values=FLAGS)


def export_grid(model, out_dir: str, constraints=selection.Constraints(),
                ignore: Sequence[str] = ()) -> str:
    """Writes the grid's single-layer models, ``model.tflite`` and ``manifest.json``.

    Returns:
      The manifest's path.
    """
    analysis = analyse(model, ignore)
    scores = {g.name: np.ones(g.size) for g in analysis.groups}  # the floor ignores scores
    plan = selection.planner(analysis, scores, constraints)
    floor = plan.keep_mask(Allocator(plan, scores).floor_counts())
    points, seen = [], set()
    for layer in latency_table.cost_layers(analysis, floor):
        for c_in, c_out in layer.points():
            name = f"{layer.key}__{c_in}x{c_out}.tflite"
            if name in seen:
                continue
            seen.add(name)
            blob = latency_measure.to_tflite(latency_measure.single_layer_model(
                layer.node, layer.handler, c_in, c_out))
            atomic.write_bytes(os.path.join(out_dir, name), blob)
            points.append({"file": name, "key": layer.key, "class": layer.class_name,
                           "full": list(layer.full), "tied": layer.tied,
                           "c_in": c_in, "c_out": c_out})
    atomic.write_bytes(os.path.join(out_dir, "model.tflite"), latency_measure.to_tflite(model))
    manifest = {"format": latency_table.FORMAT_VERSION,
                "model": latency_table.architecture(analysis), "points": points}
    return atomic.write_text(os.path.join(out_dir, "manifest.json"),
                             json.dumps(manifest, indent=1) + "\n")


def assemble(out_dir: str, device: str) -> latency_table.LatencyTable:
    """Reads ``<stem>_threads1.log`` of every exported file into a table.

    Raises:
      LatencyTableError: no manifest, or no log of the whole model.
    """
    path = os.path.join(out_dir, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise latency_table.LatencyTableError(
            f"{path}: {e}; run `python -m pipeline.latency.grid export` first") from e
    table = latency_table.LatencyTable(device, {}, _log_ms(out_dir, "model.tflite"),
                                       manifest["model"])
    if table.model_ms is None:
        raise latency_table.LatencyTableError(
            f"{out_dir}: no log of model.tflite (model_threads1.log); benchmark it too")
    for p in manifest["points"]:
        ms = _log_ms(out_dir, p["file"])
        if ms is None:
            continue
        entry = table.layers.setdefault(p["key"], {"class": p["class"], "full": p["full"],
                                                   "tied": p["tied"], "points": []})
        entry["points"].append([p["c_in"], p["c_out"], ms])
    return table


def _log_ms(out_dir: str, tflite: str) -> float | None:
    log = os.path.join(out_dir, f"{os.path.splitext(tflite)[0]}_threads1.log")
    if not os.path.isfile(log):
        return None
    with open(log, errors="replace") as f:
        run = parse_log(f.read(), source=log)
    return None if run.get("inference_avg_us") is None else run["inference_avg_us"] / 1000.0


def main(argv: Sequence[str]) -> int:
    """Dispatches ``export`` or ``assemble``; returns the exit code."""
    try:
        if len(argv) == 2 and argv[1] == "export" and FLAGS.model:
            model = keras_api.load_model(FLAGS.model)  # in the Keras that saved it
            constraints = selection.Constraints(FLAGS.min_filters, FLAGS.round_to)
            print(export_grid(model, FLAGS.out_dir, constraints, tuple(FLAGS.ignore)))
            return 0
        if len(argv) == 2 and argv[1] == "assemble" and FLAGS.device and FLAGS.table:
            table = assemble(FLAGS.out_dir, FLAGS.device)
            atomic.write_text(FLAGS.table, table.to_json())
            print(f"{FLAGS.table}: {len(table.layers)} layers, model {table.model_ms:.3f} ms")
            return 0
    except (PruningError, OSError) as e:
        return cli.fail("latency_grid", str(e))
    return cli.fail("latency_grid", "give `export --model=M` or `assemble --device=D --table=T`")


parse_argv, run = cli.entry_points("latency_grid", FLAGS, __doc__, main)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_argv)
