"""The evaluate stage: test accuracy (LiteRT) and latency of each exported ``.tflite``."""
from __future__ import annotations

import dataclasses
import functools

from pipeline.fingerprint import fingerprint
from pipeline.litert import accuracy as tflite_eval
from pipeline.litert import timing
from pipeline.run import speed_notes
from pipeline.run.results import Evaluation, ExportResult, Measurement
from pipeline.run.stages.data import Data
from pipeline.run.store import Store


def evaluate(section, exported: list[ExportResult], data: Data,
             store: Store) -> dict[str, Evaluation]:
    """Runs every exported variant on the test split; writes ``tflite/<name>.eval.json``.

    A variant with a dense ``reference`` also gets ``notes`` comparing its
    measured size and latency with the reference's (when both were exported).

    Args:
      section: ``config.evaluate`` (``latency_threads``: thread counts to time,
        () for none; ``latency_min_secs``: time each at least this long).
      exported: the export stage's output.
      data: the data stage's output.
      store: the workdir.

    Returns:
      Variant name -> its :class:`Evaluation`, in export order.
    """
    measured = {}
    for item in exported:
        name = item.path[:-len(".tflite")] + ".eval.json"
        key = fingerprint("evaluate", item.key, data.key, section.latency_threads,
                          section.latency_min_secs)
        compute = functools.partial(_measure, store.path(item.path), data, section)
        made = store.cached(name, key, compute, Measurement, save=store.write_json)
        print(f"[evaluate] {item.name}: accuracy {made.record.accuracy:.4f}")
        measured[item.name] = made.record
    evaluations = {}
    for item in exported:
        reference, notes = item.record.reference, ()
        if reference in measured:
            notes = tuple(speed_notes.compare(
                item.name, measured[item.name], store.path(item.path), reference,
                measured[reference], store.path(f"tflite/{reference}.tflite")))
        evaluations[item.name] = Evaluation(item.name, measured[item.name], notes)
    return evaluations


def _measure(path: str, data: Data, section) -> tuple[dict, Measurement]:
    """LiteRT accuracy and latency of one file: ``(eval.json's body, the same as a record)``."""
    accuracy = tflite_eval.tflite_accuracy(path, data.datasets.test)
    latency = {}
    if section.latency_threads:
        settings = timing.ProfileConfig(threads=tuple(section.latency_threads),
                                        min_secs=section.latency_min_secs)
        latency = timing.profile_tflite(path, settings).to_dict()["latency_ms"]
    record = Measurement(accuracy=accuracy["accuracy"], examples=accuracy["examples"],
                         seconds=accuracy["seconds"], latency_ms=latency)
    return dataclasses.asdict(record), record
