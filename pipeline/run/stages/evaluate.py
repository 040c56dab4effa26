"""The evaluate stage: test accuracy (LiteRT) and latency of each exported ``.tflite``."""
from __future__ import annotations

import dataclasses
import functools

from pipeline.fingerprint import fingerprint
from pipeline.litert import accuracy as tflite_eval
from pipeline.litert import timing
from pipeline.run import speed_notes
from pipeline.run.results import Evaluation, ExportResult, Measurement, PairedTiming
from pipeline.run.stages.data import Data
from pipeline.run.store import Store


def evaluate(section, exported: list[ExportResult], data: Data,
             store: Store) -> dict[str, Evaluation]:
    """Runs every exported variant on the test split; writes ``tflite/<name>.eval.json``.

    Only variants whose export is ``ok`` are run (the others have no file). A
    variant with a dense ``reference`` that was exported too also gets
    ``notes`` comparing its size, accuracy and latency with the reference's;
    the latencies come from the two files timed side by side, interleaved
    and repeated (``tflite/<name>.paired.json``, see
    :mod:`pipeline.run.speed_notes`), not from their separate profiles.

    Args:
      section: ``config.evaluate`` (``latency_threads``: thread counts to time,
        () for none; ``latency_min_secs``: time each at least this long).
      exported: the export stage's output.
      data: the data stage's output.
      store: the workdir.

    Returns:
      Variant name -> its :class:`Evaluation`, in export order, for the ``ok`` variants.
    """
    made = [item for item in exported if item.ok]
    measured = {}
    for item in made:
        name = item.path[:-len(".tflite")] + ".eval.json"
        key = fingerprint("evaluate", item.key, data.key, section.latency_threads,
                          section.latency_min_secs)
        # A multi-head file's classes are read from the output its parity check named.
        classifier = (item.record.parity or {}).get("classifier_output", "")
        compute = functools.partial(_measure, store.path(item.path), data, section, classifier)
        done = store.cached(name, key, compute, Measurement, save=store.write_json)
        print(f"[evaluate] {item.name}: accuracy {done.record.accuracy:.4f}")
        measured[item.name] = done.record
    by_name = {item.name: item for item in made}
    evaluations = {}
    for item in made:
        reference, notes = by_name.get(item.record.reference), ()
        if reference is not None:
            paired = _paired(item, reference, section, store)
            notes = tuple(speed_notes.compare(
                item.name, measured[item.name], store.path(item.path), reference.name,
                measured[reference.name], store.path(reference.path), paired))
        evaluations[item.name] = Evaluation(item.name, measured[item.name], notes)
    return evaluations


def _paired(item: ExportResult, reference: ExportResult, section,
            store: Store) -> PairedTiming | None:
    """``item`` timed against ``reference`` (cached in ``tflite/<name>.paired.json``)."""
    threads = tuple(section.latency_threads)
    if not threads:
        return None
    name = item.path[:-len(".tflite")] + ".paired.json"
    key = fingerprint("paired", item.key, reference.key, threads, section.latency_min_secs,
                      speed_notes.REPEATS, speed_notes.MARGIN)

    def compute():
        latency = speed_notes.time_paired(store.path(item.path), store.path(reference.path),
                                          threads, section.latency_min_secs)
        record = PairedTiming(reference.name, speed_notes.REPEATS, latency)
        return dataclasses.asdict(record), record

    return store.cached(name, key, compute, PairedTiming, save=store.write_json).record


def _measure(path: str, data: Data, section, classifier: str = "") -> tuple[dict, Measurement]:
    """LiteRT accuracy and latency of one file: ``(eval.json's body, the same as a record)``.

    ``classifier`` names a multi-head file's class-score output ('' for one output).
    """
    accuracy = tflite_eval.tflite_accuracy(path, data.datasets.test,
                                           preprocess=data.datasets.preprocess, output=classifier)
    latency = {}
    if section.latency_threads:
        settings = timing.ProfileConfig(threads=tuple(section.latency_threads),
                                        min_secs=section.latency_min_secs)
        latency = timing.profile_tflite(path, settings).to_dict()["latency_ms"]
    record = Measurement(accuracy=accuracy["accuracy"], examples=accuracy["examples"],
                         seconds=accuracy["seconds"], latency_ms=latency)
    return dataclasses.asdict(record), record
