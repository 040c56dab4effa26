"""The pipeline's stages, each taking what it needs and returning what it made.

data -> baseline -> sensitivity -> (prune -> finetune) x iterations -> export -> evaluate
-> report.

Every stage that writes an artifact hashes what the artifact depends on
(the config sections it reads and the hashes of its inputs) and skips
itself when the artifact exists with a matching stamp (see
:mod:`pipeline.run.store`). Workdir layout::

  config.json                   the config of the last run
  baseline.keras                trained or loaded baseline (+ .stamp.json)
  sensitivity.json              validation accuracy per group and ratio removed
  plan.json, pruned_initial.keras   the pruning plan and the pruned model before fine-tuning
  pruned.keras                  the fine-tuned pruned model
  steps/plan_<i>.json, steps/pruned_initial_<i>.keras, steps/pruned_<i>.keras
                                each step of an iterative pruning (finetune.iterations > 1)
  tflite/<variant>.tflite       one file per export variant (RGB input, metadata, verified),
                                plus <variant>.eval.json; tflite/labels.txt; the sparse
                                variants' fine-tuned Keras models as tflite/<variant>.keras
  baseline/, finetune[_<i>]/    checkpoints (while training), history.csv and TensorBoard
                                logs (``tensorboard --logdir <workdir>``)
  plots/*.png                   accuracy vs MACs and latency, channels per layer, sensitivity
  report.json, report.md
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import numpy as np
import tf_keras

import models
from pipeline import api
from pipeline.data import datasets as data
from pipeline.litert import accuracy as tflite_eval
from pipeline.export import variants as export
from pipeline.litert import timing as profile
from pipeline.run import report as reporting
from pipeline.training import distribute
from pipeline.export import mobile
from pipeline.run import model_file
from pipeline.run import plots
from pipeline.pruning import sensitivity as sensitivity_scan
from pipeline.export import sparse as sparsity
from pipeline.run import speed_notes as speed
from pipeline.training import fit as train
from pipeline.pruning.channels import analyse
from pipeline.pruning.counting import count_macs, count_params
from pipeline.errors import PlanError, PruningError
from pipeline.pruning.plan import make_plan
from pipeline.fingerprint import fingerprint
from pipeline.run.store import Store


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


def sensitivity(config, base: Made, datasets: data.Datasets, store: Store) -> dict | None:
    """The per-group sensitivity scan of the baseline; writes ``sensitivity.json``.

    Returns:
      The curves as a dict (see :class:`pipeline.pruning.sensitivity.Curves`), or None
      when ``config.sensitivity.enabled`` is False or there is no validation split.
    """
    s, p = config.sensitivity, config.prune
    name = "sensitivity.json"
    if not s.enabled:
        return None
    if not datasets.sizes.get("val", 0):
        print("[sensitivity] skipped: no validation split (config.data.val_split=0)")
        return None
    key = fingerprint("sensitivity", base.key, data_key(config), s, p.criterion, p.ignore,
                      p.min_filters, config.seed)
    if store.fresh(name, key) is not None:
        with open(store.path(name)) as f:
            body = json.load(f)
        print(f"[sensitivity] up to date: {name} ({len(body['groups'])} groups)")
        return body
    print(f"[sensitivity] {p.criterion}: validation accuracy with each group narrowed by "
          f"{', '.join(f'{r:.0%}' for r in s.ratios)}, no fine-tuning")
    curves = sensitivity_scan.scan(
        base.model, datasets.val, tuple(s.ratios), criterion=p.criterion, ignore=tuple(p.ignore),
        min_filters=p.min_filters, max_batches=s.max_batches, data=datasets.train,
        seed=config.seed, progress=lambda line: print(f"[sensitivity] {line}", flush=True))
    body = curves.to_dict()
    store.write_text(name, json.dumps(body, indent=1, sort_keys=True) + "\n")
    store.stamp(name, key, {"seconds": curves.seconds,
                            "baseline_accuracy": curves.baseline_accuracy})
    worst = min(body["groups"], key=lambda g: body["groups"][g][-1]["accuracy"])
    print(f"[sensitivity] {name}: {curves.examples} validation images, most sensitive group "
          f"{worst} ({curves.seconds:.0f} s)")
    return body


def prune_and_finetune(config, base: Made, datasets: data.Datasets,
                       store: Store) -> tuple[Made, Made]:
    """Prunes and fine-tunes in ``config.finetune.iterations`` steps.

    The schedule: with overall ratio ``R = config.prune.ratio`` of the target
    (MACs or filters) in ``k`` steps, step ``i`` prunes the previous step's
    fine-tuned model down to ``(1 - R) ** (i / k)`` of the baseline's amount,
    so every step removes about the same share ``1 - (1 - R) ** (1 / k)`` of
    what is left (50% of MACs in 2 steps: 29.3%, then 29.3% of the rest).
    Each step's ratio is computed from the model actually reached, so a step
    that lands a little off its target (selection is within two points) is
    corrected by the next, and the last lands on ``R`` itself. Each step
    fine-tunes ``config.finetune.epochs`` epochs.

    With one step the artifacts are ``plan.json``, ``pruned_initial.keras``
    and ``pruned.keras``. With more, step ``i`` writes ``steps/plan_<i>.json``,
    ``steps/pruned_initial_<i>.keras`` and ``steps/pruned_<i>.keras`` (each
    stamped with a key that chains the previous step's), and then
    ``plan.json`` is the composed plan from the baseline to the final model
    (which layers lost which channels overall) and ``pruned.keras`` the final
    model.

    Returns:
      ``(pruned, tuned)``: the last step's model before fine-tuning (its
      record carries the overall ``removed`` and per-step ``steps``; its plan
      the composed one) and the final fine-tuned model.
    """
    k = config.finetune.iterations
    current, steps, plans = base, [], []
    full = _amount(base.model, config.prune) if k > 1 else 0.0
    for i in range(1, k + 1):
        goal = full * (1 - config.prune.ratio) ** (i / k)
        ratio = config.prune.ratio if k == 1 else max(
            0.0, 1 - goal / _amount(current.model, config.prune))
        pruned = prune(config, current, datasets, store, ratio=ratio, step=(i, k))
        current = finetune(config, pruned, base, datasets, store, step=(i, k))
        plans.append(pruned.plan)
        steps.append({"step": i, "ratio": ratio, "plan": pruned.record.get("plan", "plan.json"),
                      "keras": current.path, "macs": current.record["macs"],
                      "accuracy_before_finetune": pruned.record["accuracy"],
                      "accuracy": current.record["accuracy"],
                      "epochs": current.record.get("epochs", 0)})
    if k == 1:
        return pruned, current
    plan = _compose(base.model, plans, config.prune)
    store.write_text("plan.json", plan.to_json())
    name = "pruned.keras"
    key = fingerprint("final", current.key)
    final = dict(current.record, epochs=sum(s["epochs"] for s in steps))
    if store.fresh(name, key) is None:
        store.save_model(name, current.model)
        store.stamp(name, key, final)
    print(f"[prune] {k} steps, overall\n{plan.summary_table()}")
    record = dict(pruned.record, removed=dict(plan.removed), steps=steps, plan="plan.json")
    return (Made(pruned.model, pruned.path, pruned.key, record, plan),
            Made(current.model, name, current.key, final, plan))


def prune(config, source: Made, datasets: data.Datasets, store: Store, *,
          ratio: float | None = None, step: tuple[int, int] = (1, 1)) -> Made:
    """Prunes ``source`` per ``config.prune`` (by ``ratio`` if given); writes the plan.

    ``step=(i, k)`` names step ``i`` of ``k``'s artifacts (see
    :func:`prune_and_finetune`).
    """
    i, k = step
    ratio = config.prune.ratio if ratio is None else ratio
    name, plan_name = ("pruned_initial.keras", "plan.json") if k == 1 else (
        f"steps/pruned_initial_{i}.keras", f"steps/plan_{i}.json")
    tag = "[prune]" if k == 1 else f"[prune {i}/{k}]"
    key = fingerprint("prune", source.key, config.prune, config.seed, step, ratio)
    record = store.fresh(name, key)
    if record is not None and os.path.exists(store.path(plan_name)):
        with open(store.path(plan_name)) as f:
            plan = api.PrunePlan.from_json(f.read())
        print(f"{tag} up to date: {plan_name}, {name}\n{plan.summary_table()}")
        return Made(_load(store.path(name)), name, key, record, plan)
    start = time.time()
    p = config.prune
    result = api.prune(source.model, ratio, target=p.target, criterion=p.criterion,
                       scope=p.scope, round_to=p.round_to, min_filters=p.min_filters,
                       ignore=tuple(p.ignore), data=datasets.train, seed=config.seed,
                       latency=_latency_config(p, store))
    print(f"{tag} {p.criterion}, {p.scope}, {ratio:.1%} of {p.target}\n"
          f"{result.plan.summary_table()}")
    if "latency" in result.plan.settings:
        print(f"{tag} {reporting.latency_line(result.plan.settings['latency'])}")
    record = dict(_measure(result.model, datasets), removed=dict(result.plan.removed),
                  plan=plan_name, seconds=time.time() - start)
    store.save_model(name, result.model)  # the bigger write first: a full disk keeps the old plan
    store.write_text(plan_name, result.plan.to_json())
    store.stamp(name, key, record)
    print(f"{tag} test accuracy before fine-tuning {record['accuracy']:.4f}")
    return Made(result.model, name, key, record, result.plan)


def _latency_config(p, store: Store):
    """``prune.latency`` as a LatencyConfig with the workdir's table cache; None for other targets."""
    if p.target != "latency":
        return None
    settings = p.get("latency") or {}
    given = {k: settings[k] for k in ("table", "tolerance", "max_iterations", "utility")
             if k in settings}  # the rest: LatencyConfig's defaults
    return api.LatencyConfig(cache_dir=store.path("latency_tables"), **given)


def finetune(config, pruned: Made, base: Made, datasets: data.Datasets, store: Store, *,
             step: tuple[int, int] = (1, 1)) -> Made:
    """Fine-tunes the pruned model (optionally distilling from the baseline)."""
    i, k = step
    name = "pruned.keras" if k == 1 else f"steps/pruned_{i}.keras"
    tag = "[finetune]" if k == 1 else f"[finetune {i}/{k}]"
    f = config.finetune
    key = fingerprint("finetune", pruned.key, f, config.deterministic)
    record = store.fresh(name, key)
    if record is not None:
        print(f"{tag} up to date: {name} (test accuracy {record['accuracy']:.4f})")
        return Made(_load(store.path(name)), name, key, record, pruned.plan)
    tf_keras.utils.set_random_seed(config.seed + i)
    start = time.time()
    print(f"{tag} {f.epochs} epochs" + (f", distilling at T={f.temperature}, "
                                        f"alpha={f.alpha}" if f.distill else ""))
    fitted = train.fit(pruned.model, datasets, train.Recipe.from_config(f),
                       store.scratch("finetune" if k == 1 else f"finetune_{i}", key),
                       teacher=base.model if f.distill else None,
                       temperature=f.temperature, alpha=f.alpha)
    record = dict(_measure(pruned.model, datasets), history=fitted.history,
                  epochs=fitted.epochs, seconds=time.time() - start)
    store.save_model(name, pruned.model)
    store.stamp(name, key, record)
    print(f"{tag} test accuracy {record['accuracy']:.4f} ({record['seconds']:.0f} s)")
    return Made(pruned.model, name, key, record, pruned.plan)


def _amount(model, p) -> float:
    """What ``prune.target`` counts in ``model``: its MACs or its prunable filters."""
    if p.target == "macs":
        return float(count_macs(model))
    return float(sum(g.size for g in analyse(model, tuple(p.ignore)).groups))


def _compose(model, plans: list, p) -> api.PrunePlan:
    """One plan from ``model`` to the last step's architecture: the steps' kept indices chained.

    Layer names, hence group names, survive a rebuild, so step ``i``'s kept
    indices index into step ``i - 1``'s.

    Raises:
      PlanError: a step's groups are not the previous step's.
    """
    analysis = analyse(model, tuple(p.ignore))
    kept = {g.name: np.arange(g.size) for g in analysis.groups}
    for i, plan in enumerate(plans, 1):
        step = plan.kept()
        sizes = {g.name: g.size for g in plan.groups}
        if sizes != {n: len(indices) for n, indices in kept.items()}:
            raise PlanError(f"cannot compose the pruning steps: step {i}'s groups "
                            f"{sorted(step)[:5]} do not match the previous model's")
        kept = {n: kept[n][step[n]] for n in kept}
    settings = dict(plans[-1].settings, ratio=float(p.ratio), iterations=len(plans))
    composed = make_plan(analysis, kept, settings, {})
    macs = 1 - composed.macs_after / max(composed.macs_before, 1)
    filters = 1 - sum(len(g.keep) for g in composed.groups) / max(
        sum(g.size for g in composed.groups), 1)
    return dataclasses.replace(composed, removed={"filters": filters, "macs": macs})


def export_variants(config, sources: dict[str, Made], datasets: data.Datasets,
                    store: Store) -> list[Exported]:
    """Exports each of ``config.export.variants`` to ``tflite/<name>.tflite``, verified.

    Every file takes a 1xHxWx3 RGB input, carries TFLite metadata (labels
    packed from ``tflite/labels.txt``) and is checked against the Keras model
    it was converted from on ``export.verify_examples`` validation images
    (see :func:`pipeline.export.variants.export_variant`); a variant that fine-tunes
    saves that model as ``tflite/<name>.keras``.

    Raises:
      PruningError: a variant failed to convert or verify; the message names it.
    """
    e = config.export
    made, images = [], None
    context = export.ExportContext(
        calibration=datasets.calibration, samples=e.calibration_samples, int8_input=e.int8_input,
        train=datasets.train, steps_per_epoch=datasets.steps_per_epoch,
        sparse=sparsity.SparseRecipe(epochs=e.sparse_epochs, steps=e.sparse_steps,
                                     lr=e.sparse_lr, block_sparsity=e.block_sparsity))
    labels = mobile.write_labels(store.path("tflite/labels.txt"), datasets.class_names)
    settings = {k: v for k, v in e.items()
                if k not in ("variants", "latency_threads", "latency_min_secs")}
    for name in e.variants:
        variant = export.get_variant(name)
        source = sources[variant.source]
        path = f"tflite/{name}.tflite"
        key = fingerprint("export", name, variant.version, source.key, settings, data_key(config),
                          datasets.class_names)
        record = store.fresh(path, key)
        if record is None and not distribute.current().is_chief:
            _join_prepare(variant, source.model, context, config.seed)
            continue
        if record is None:
            start = time.time()
            tf_keras.utils.set_random_seed(config.seed)
            if images is None:
                images = _verify_images(datasets, e.verify_examples)
            model, checked = export.export_variant(
                variant, source.model, context, store.path(path), labels,
                _model_info(config, name, datasets),
                export.Checks(images, e.float_rtol, e.int8_min_agreement))
            keras_path = source.path
            if variant.prepare is not None:
                keras_path = store.save_model(f"tflite/{name}.keras", model)
                keras_path = os.path.relpath(keras_path, store.workdir)
            record = dict(checked, keras=keras_path, macs=count_macs(model),
                          params=count_params(model), reference=variant.reference,
                          seconds=time.time() - start)
            store.stamp(path, key, record)
            print(f"[export] {path} ({os.path.getsize(store.path(path)) / 1024:.1f} KiB): "
                  + "; ".join(record["notes"]))
        else:
            print(f"[export] up to date: {path}")
        made.append(Exported(name, variant.source, path, key, record))
    return made


def _join_prepare(variant, model, context: export.ExportContext, seed: int) -> None:
    """A non-chief worker's share of a variant: its distributed fine-tune, no file.

    Only the chief converts and writes; the others take part in the
    variant's ``prepare`` (a sparsity-aware fine-tune under the strategy).
    """
    if variant.prepare is not None:
        tf_keras.utils.set_random_seed(seed)
        variant.prepare(model, context)


def _verify_images(datasets: data.Datasets, count: int) -> np.ndarray:
    """Up to ``count`` validation images (training images if there is no validation split)."""
    split = datasets.val.unbatch() if datasets.sizes.get("val", 0) else datasets.calibration
    (images,) = [np.asarray(x) for x, _ in split.batch(count).take(1)]
    return images


def _model_info(config, name: str, datasets: data.Datasets) -> mobile.ModelInfo:
    m = config.export.metadata
    height, width, _ = datasets.input_shape
    return mobile.ModelInfo(
        name=m.name or f"{config.model.name}_{name}",
        description=m.description or (
            f"{config.data.name} image classifier ({datasets.num_classes} classes), export "
            f"variant {name}: takes a {height}x{width} RGB image, returns class probabilities."),
        version=m.version, author=m.author, license=m.license)


def evaluate(config, exported: list[Exported], datasets: data.Datasets,
             store: Store) -> dict[str, dict]:
    """Test accuracy (LiteRT) and latency of each ``.tflite``, by variant name.

    A variant with a dense ``reference`` also gets ``notes`` comparing its
    measured size and latency with the reference's (when both were exported).
    """
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
        results[item.name] = dict(record)
    for item in exported:
        reference = item.record.get("reference")
        if reference in results:
            results[item.name]["notes"] = speed.compare(
                item.name, results[item.name], store.path(item.path),
                reference, results[reference], store.path(f"tflite/{reference}.tflite"))
    return results


def write_report(config, base: Made, pruned: Made, tuned: Made, exported: list[Exported],
                 evaluations: dict[str, dict], store: Store, *,
                 sensitivity: dict | None = None, distribution: dict | None = None) -> dict:
    """Writes ``report.json``, ``report.md`` and the PNG plots it links; returns the report.

    ``distribution`` is the training strategy's record (``{"strategy", "num_workers",
    "replicas"}``, see :meth:`pipeline.training.distribute.Cluster.record`); None means one process.
    """
    body = reporting.build(config, base, pruned, tuned, exported, evaluations, store.workdir)
    body["distribute"] = distribution or {"strategy": "none", "num_workers": 1, "replicas": 1}
    if sensitivity is not None:
        body["sensitivity"] = "sensitivity.json"
    layers = tuned.plan.layers if tuned.plan is not None else None
    body["plots"] = plots.write_all(body, layers, sensitivity, store.workdir)
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
    return model_file.load(path)  # ModelFileError: missing, empty, foreign or damaged


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
