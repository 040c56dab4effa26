"""The pipeline's stages, each taking what it needs and returning what it made.

data -> baseline -> prune -> finetune -> export -> evaluate -> report.

Every stage that writes an artifact hashes what the artifact depends on
(the config sections it reads and the hashes of its inputs) and skips
itself when the artifact exists with a matching stamp (see
:mod:`pipeline.store`). Workdir layout::

  config.json                   the config of the last run
  baseline.keras                trained or loaded baseline (+ .stamp.json)
  plan.json, pruned_initial.keras   the pruning plan and the pruned model before fine-tuning
  pruned.keras                  the fine-tuned pruned model
  tflite/<variant>.tflite       one file per export variant, plus <variant>.eval.json
  baseline/, finetune/          checkpoints (while training) and TensorBoard logs
  report.json, report.md
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import tf_keras

import models
from pipeline import api, data, evaluate as tflite_eval, export, profile, report as reporting
from pipeline import train
from pipeline.counting import count_macs, count_params
from pipeline.errors import PruningError
from pipeline.store import Store, fingerprint


@dataclasses.dataclass(frozen=True)
class Made:
    """A model-producing stage's output.

    Attributes:
      model: the Keras model.
      path: where it is saved, relative to the workdir.
      key: hash of everything it depends on.
      record: what the stage measured (accuracy, macs, params, seconds...).
      plan: the pruning plan (prune stage only).
    """

    model: Any
    path: str
    key: str
    record: dict
    plan: Any = None


@dataclasses.dataclass(frozen=True)
class Exported:
    """One export variant's ``.tflite`` file and what it was made from."""

    name: str
    source: str
    path: str
    key: str
    record: dict


def load_data(config) -> data.Datasets:
    """The data stage: train/val/test pipelines from ``config.data``."""
    return data.make_datasets(
        config.data.name, data_dir=config.data.dir, batch_size=config.train.batch_size,
        val_split=config.data.val_split, subset=config.data.subset,
        test_subset=config.data.test_subset, image_size=config.model.input_size,
        channels=config.model.channels, flip=config.data.flip, shift=config.data.shift,
        seed=config.seed)


def data_key(config) -> str:
    return fingerprint("data", config.data, config.model.input_size, config.model.channels,
                       config.train.batch_size, config.seed)


def baseline(config, datasets: data.Datasets, store: Store) -> Made:
    """Loads ``model.path`` or trains ``model.name``; saves ``baseline.keras``."""
    name = "baseline.keras"
    key = fingerprint("baseline", data_key(config), config.model, config.train,
                      _file_identity(config.model.path), config.deterministic)
    record = store.fresh(name, key)
    if record is not None:
        print(f"[baseline] up to date: {name} (test accuracy {record['accuracy']:.4f})")
        return Made(_load(store.path(name)), name, key, record)
    tf_keras.utils.set_random_seed(config.seed)
    start = time.time()
    if config.model.path:
        model = _load(config.model.path)
        _check_input(model, datasets.input_shape, config.model.path)
        record = {"source": os.path.abspath(config.model.path)}
    else:
        model = models.build(config.model.name, datasets.input_shape, datasets.num_classes,
                             width=config.model.width, dropout=config.model.dropout)
        print(f"[baseline] training {config.model.name} for {config.train.epochs} epochs "
              f"on {datasets.sizes['train']} images")
        fitted = train.fit(model, datasets, train.Recipe.from_config(config.train),
                           store.scratch("baseline", key))
        record = {"source": f"trained:{config.model.name}", "history": fitted.history,
                  "epochs": fitted.epochs}
    record.update(_measure(model, datasets), seconds=time.time() - start)
    store.save_model(name, model)
    store.stamp(name, key, record)
    print(f"[baseline] test accuracy {record['accuracy']:.4f} ({record['seconds']:.0f} s)")
    return Made(model, name, key, record)


def prune(config, base: Made, datasets: data.Datasets, store: Store) -> Made:
    """Prunes the baseline per ``config.prune``; writes ``plan.json`` and prints its table."""
    name = "pruned_initial.keras"
    key = fingerprint("prune", base.key, config.prune, config.seed)
    record = store.fresh(name, key)
    if record is not None and os.path.exists(store.path("plan.json")):
        with open(store.path("plan.json")) as f:
            plan = api.PrunePlan.from_json(f.read())
        print(f"[prune] up to date: plan.json, {name}\n{plan.summary_table()}")
        return Made(_load(store.path(name)), name, key, record, plan)
    start = time.time()
    p = config.prune
    result = api.prune(base.model, p.ratio, target=p.target, criterion=p.criterion,
                       scope=p.scope, round_to=p.round_to, min_filters=p.min_filters,
                       ignore=tuple(p.ignore), data=datasets.train, seed=config.seed)
    print(f"[prune] {p.criterion}, {p.scope}, {p.ratio:.0%} of {p.target}\n"
          f"{result.plan.summary_table()}")
    record = dict(_measure(result.model, datasets), removed=dict(result.plan.removed),
                  seconds=time.time() - start)
    store.write_text("plan.json", result.plan.to_json())
    store.save_model(name, result.model)
    store.stamp(name, key, record)
    print(f"[prune] test accuracy before fine-tuning {record['accuracy']:.4f}")
    return Made(result.model, name, key, record, result.plan)


def finetune(config, pruned: Made, base: Made, datasets: data.Datasets, store: Store) -> Made:
    """Fine-tunes the pruned model (optionally distilling from the baseline)."""
    name = "pruned.keras"
    f = config.finetune
    key = fingerprint("finetune", pruned.key, f, config.deterministic)
    record = store.fresh(name, key)
    if record is not None:
        print(f"[finetune] up to date: {name} (test accuracy {record['accuracy']:.4f})")
        return Made(_load(store.path(name)), name, key, record, pruned.plan)
    tf_keras.utils.set_random_seed(config.seed + 1)
    start = time.time()
    print(f"[finetune] {f.epochs} epochs" + (f", distilling at T={f.temperature}, "
                                             f"alpha={f.alpha}" if f.distill else ""))
    fitted = train.fit(pruned.model, datasets, train.Recipe.from_config(f),
                       store.scratch("finetune", key),
                       teacher=base.model if f.distill else None,
                       temperature=f.temperature, alpha=f.alpha)
    record = dict(_measure(pruned.model, datasets), history=fitted.history,
                  epochs=fitted.epochs, seconds=time.time() - start)
    store.save_model(name, pruned.model)
    store.stamp(name, key, record)
    print(f"[finetune] test accuracy {record['accuracy']:.4f} ({record['seconds']:.0f} s)")
    return Made(pruned.model, name, key, record, pruned.plan)


def export_variants(config, sources: dict[str, Made], datasets: data.Datasets,
                    store: Store) -> list[Exported]:
    """Converts each of ``config.export.variants`` to ``tflite/<name>.tflite``."""
    made = []
    context = export.ExportContext(calibration=datasets.calibration)
    for name in config.export.variants:
        variant = export.get_variant(name)
        source = sources[variant.source]
        path = f"tflite/{name}.tflite"
        key = fingerprint("export", name, variant.version, source.key)
        record = store.fresh(path, key)
        if record is None:
            start = time.time()
            store.write_bytes(path, variant.convert(source.model, context))
            record = {"keras": source.path, "macs": count_macs(source.model),
                      "params": count_params(source.model), "seconds": time.time() - start}
            store.stamp(path, key, record)
            print(f"[export] {path} ({os.path.getsize(store.path(path)) / 1024:.0f} KiB)")
        else:
            print(f"[export] up to date: {path}")
        made.append(Exported(name, variant.source, path, key, record))
    return made


def evaluate(config, exported: list[Exported], datasets: data.Datasets,
             store: Store) -> dict[str, dict]:
    """Test accuracy (and latency, if configured) of each ``.tflite``, by variant name."""
    results = {}
    e = config.export
    for item in exported:
        name = item.path[:-len(".tflite")] + ".eval.json"
        key = fingerprint("evaluate", item.key, data_key(config), e.latency_threads,
                          e.latency_min_secs)
        record = store.fresh(name, key)
        if record is None:
            record = tflite_eval.tflite_accuracy(store.path(item.path), datasets.test)
            record["latency_ms"] = _latency(store.path(item.path), e)
            store.write_text(name, json.dumps(record, indent=1, sort_keys=True) + "\n")
            store.stamp(name, key, record)
        print(f"[evaluate] {item.name}: accuracy {record['accuracy']:.4f}")
        results[item.name] = record
    return results


def write_report(config, base: Made, pruned: Made, tuned: Made, exported: list[Exported],
                 evaluations: dict[str, dict], store: Store) -> dict:
    """Writes ``report.json`` and ``report.md``; returns the report."""
    body = reporting.build(config, base, pruned, tuned, exported, evaluations, store.workdir)
    store.write_text("report.json", json.dumps(body, indent=1, sort_keys=True) + "\n")
    store.write_text("report.md", reporting.markdown(body))
    print(f"[report] {store.path('report.json')}\n{reporting.markdown(body)}")
    return body


def _latency(path: str, e) -> dict:
    if not e.latency_threads:
        return {}
    settings = profile.ProfileConfig(threads=tuple(e.latency_threads),
                                     min_secs=e.latency_min_secs)
    return profile.profile_tflite(path, settings).to_dict()["latency_ms"]


def _measure(model, datasets: data.Datasets) -> dict:
    train.compile_model(model, train.Recipe(), datasets.steps_per_epoch)
    return {"accuracy": train.evaluate(model, datasets.test)["accuracy"],
            "macs": count_macs(model), "params": count_params(model)}


def _load(path: str):
    try:
        return tf_keras.models.load_model(path, compile=False)
    except (OSError, ValueError, ImportError) as e:
        raise PruningError(f"cannot load the Keras model {path} (.keras, .h5 or a SavedModel "
                           f"folder): {e}") from e


def _check_input(model, shape, path) -> None:
    have = tuple(model.input_shape[1:])
    if have != tuple(shape):
        raise PruningError(f"{path} takes inputs {have} but the data yields {tuple(shape)}; "
                           "set config.model.input_size/channels to match the model")


def _file_identity(path: str):
    """Path, size and mtime of ``model.path``, so a replaced file retriggers the stage."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError as e:
        raise PruningError(f"config.model.path={path!r} does not exist") from e
    return [os.path.abspath(path), st.st_size, int(st.st_mtime)]
