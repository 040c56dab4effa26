"""The export stage: each of ``export.variants`` as a verified ``tflite/<name>.tflite``.

A variant's outcome is recorded, not fatal (:class:`pipeline.run.results.ExportResult`):

* ``ok``: written, verified and stamped;
* ``not_applicable``: the variant prepares a sparse model and no layer of
  the source model can take its pattern (every kernel left dense, say 2:4 on
  a model whose channels are not multiples of 4): the file would be the
  source model under another name, so none is written; or the model has
  several outputs (heads), which the export does not write yet (its
  metadata, LiteRT accuracy and sparse fine-tunes read one classifier
  output): the pruned, fine-tuned ``pruned.keras`` keeps every head;
* ``failed``: preparing, converting, adding metadata or verifying it raised
  a :class:`pipeline.errors.PruningError` (int8 top-1 agreement below
  ``export.int8_min_agreement``, a 2:4 file check, a conversion error). A
  full disk or an unwritable workdir is the run's failure, not the
  variant's: it stops the run as before.

Either way no file is left at ``tflite/<name>.tflite``: one from an earlier
run (made from another key, since a fresh one would have been reused) is
removed with its stamp, evaluation and fine-tuned model, so nothing in the
workdir passes for this run's. Nothing is stamped for a variant that was not
made, so a rerun tries it again; the others are reused.

A model of several outputs (heads, e.g. MTCNN's O-Net) is exported with every
head: each output of the file is named after its Keras output layer, the
parity check compares every output (each against its own scale) and judges
top-1 agreement on the classifier (``model.output``, or the one of the data's
class count), the metadata labels that output, and the sparse fine-tunes
train it on the labels with the other heads held to the source model.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import time

import numpy as np

from pipeline import keras_api
from pipeline.data.datasets import Datasets
from pipeline.errors import PruningError, WorkdirError
from pipeline.export import metadata
from pipeline.export import variants as export
from pipeline.export.sparse_finetune import SparseRecipe
from pipeline.fingerprint import fingerprint
from pipeline.pruning.counting import count_macs, count_params
from pipeline.run import config_errors, results
from pipeline.run import signals as guard
from pipeline.run.results import ExportRecord, ExportResult, ModelResult
from pipeline.run.stages.data import Data
from pipeline.run.store import Store
from pipeline.training import heads, traps
from pipeline.training.distribute import Cluster


def export_variants(section, sources: dict[str, ModelResult], data: Data, store: Store, *,
                    model_name: str, data_name: str, seed: int,
                    cluster: Cluster | None = None, output: str = "") -> list[ExportResult]:
    """Exports each of ``export.variants`` to ``tflite/<name>.tflite``, verified.

    Every file takes a 1xHxWx3 RGB input, carries TFLite metadata (labels
    packed from ``tflite/labels.txt``) and is checked against the Keras model
    it was converted from on ``export.verify_examples`` validation images
    (see :func:`pipeline.export.variants.export_variant`); a variant that
    fine-tunes saves that model as ``tflite/<name>.keras``. On a non-chief
    worker of a cluster, only the variants' distributed fine-tunes run: the
    chief converts and writes.

    Args:
      section: ``config.export``.
      sources: ``{"baseline": ..., "pruned": ...}``, the Keras models variants convert.
      data: the data stage's output.
      store: the workdir.
      model_name: ``model.name``, for the metadata's default name.
      data_name: ``data.name``, for the metadata's default description.
      seed: seeds each variant's preparation.
      cluster: what the sparse fine-tunes train under (None: this process alone).
      output: ``model.output``, a multi-head model's classifier ('' = automatic).

    Returns:
      One :class:`ExportResult` per variant, in order, each with its ``status``
      and ``reason`` (see the module doc); none on a non-chief worker.
    """
    e, datasets = section, data.datasets
    cluster = Cluster() if cluster is None else cluster
    context = export.ExportContext(
        calibration=datasets.calibration, samples=e.calibration_samples, int8_input=e.int8_input,
        train=datasets.train, steps_per_epoch=datasets.steps_per_epoch,
        sparse=SparseRecipe(epochs=e.sparse_epochs, steps=e.sparse_steps, lr=e.sparse_lr,
                            block_sparsity=e.block_sparsity), cluster=cluster,
        preprocess=datasets.preprocess,
        classifier=_classifier(sources["pruned"].model, datasets.num_classes, output))
    heads_of = _heads_of(sources["pruned"].model, context.classifier)
    labels = metadata.write_labels(store.path("tflite/labels.txt"), datasets.class_names)
    images = functools.cache(lambda: _verify_images(datasets, e.verify_examples))
    # Which variants are made is not a setting of any one of them: adding one redoes no other.
    settings = {k: v for k, v in e.items() if k != "variants"}
    made = []
    for name in e.variants:
        variant = export.get_variant(name)
        source = sources[variant.source]
        path = f"tflite/{name}.tflite"
        key = fingerprint("export", name, variant.version, source.key, settings, data.key,
                          datasets.class_names)
        if not cluster.is_chief:
            if store.fresh(path, key) is None:  # the chief fine-tunes too: take part
                _join_prepare(variant, source.model, context, seed)
            continue
        compute = functools.partial(
            _export, variant, source, context, store, path, labels,
            _metadata_info(e.metadata, name, model_name, data_name, datasets, heads_of),
            lambda: export.Checks(images(), e.float_rtol, e.int8_min_agreement), seed)
        try:
            exported = store.cached(path, key, compute, ExportRecord)
        except PruningError as error:
            if (isinstance(error, (WorkdirError, traps.OneDnnTrapError))
                    or guard.is_disk_full(error)):
                raise  # the run's problem, not the variant's: stop, keep every earlier file
            made.append(_not_made(variant, store, path, key, error))
            continue
        if exported.reused:
            print(f"[export] up to date: {path}")
        else:
            print(f"[export] {path} ({os.path.getsize(store.path(path)) / 1024:.1f} KiB): "
                  + "; ".join(exported.record.notes))
        made.append(ExportResult(name, variant.source, path, key, exported.record))
    return made


class NotApplicable(PruningError):
    """No layer of the source model takes the variant's sparsity pattern."""


def _not_made(variant: export.Variant, store: Store, path: str, key: str,
              error: PruningError) -> ExportResult:
    """The result of a variant that was not made; removes what an earlier run left of it."""
    status = results.NOT_APPLICABLE if isinstance(error, NotApplicable) else results.FAILED
    reason = _one_line(config_errors.spelled(error), store.path(path), path)
    for stale in (path, f"tflite/{variant.name}.eval.json", f"tflite/{variant.name}.paired.json",
                  f"tflite/{variant.name}.keras"):
        for name in (stale, stale + ".stamp.json"):
            if os.path.isfile(store.path(name)):
                os.remove(store.path(name))
    print(f"[export] {variant.name}: {status.replace('_', ' ')}: {reason}")
    return ExportResult(variant.name, variant.source, path, key, None, status, reason)


def _one_line(message: str, absolute: str, relative: str) -> str:
    """``message`` on one line, naming the variant's file by its workdir path.

    A check that failed ran on the atomic write's temporary file
    (``.<name>.<random>.tmp.tflite`` beside the target), which no longer exists.
    """
    directory, name = os.path.split(absolute)
    stem, suffix = os.path.splitext(name)
    temporary = re.escape(os.path.join(directory, f".{stem}.")) + r"[^\s/]+" + re.escape(
        f".tmp{suffix}")
    message = re.sub(temporary, relative, message).replace(absolute, relative)
    return " ".join(message.split())


def _export(variant: export.Variant, source: ModelResult, context: export.ExportContext,
            store: Store, path: str, labels: str, info: metadata.ModelInfo, checks, seed: int):
    """Converts, writes and verifies one variant; ``export_variant`` writes the file.

    ``checks()`` makes the :class:`pipeline.export.variants.Checks`: the
    verification images are read only when a variant is exported.
    """
    start = time.time()
    keras_api.set_random_seed(seed)
    if variant.prepare is not None:
        prepared = variant.prepare(source.model, context)
        _check_applicable(prepared)
        # Prepared once: export_variant takes the variant's steps, so hand it this result.
        variant = dataclasses.replace(variant, prepare=lambda model, context: prepared)
    model, checked = export.export_variant(variant, source.model, context, store.path(path),
                                           labels, info, checks())
    keras_path = source.path
    if variant.prepare is not None:
        keras_path = os.path.relpath(store.save_model(f"tflite/{variant.name}.keras", model),
                                     store.workdir)
    return None, ExportRecord(keras=keras_path, macs=count_macs(model), params=count_params(model),
                              parity=checked["parity"], notes=list(checked["notes"]),
                              reference=variant.reference, seconds=time.time() - start)


def _classifier(model, num_classes: int, output: str) -> str:
    """The classifier output's layer name of a multi-head ``model`` ('' for one output)."""
    if len(model.outputs) == 1:
        return ""
    return heads.output_names(model)[heads.classifier_output(model, num_classes, output)]


def _check_applicable(prepared: export.Prepared) -> None:
    """Raises :class:`NotApplicable` when a sparse preparation left every kernel dense.

    Raises:
      NotApplicable: no layer was made sparse and some were left dense; the
        message groups them by reason.
    """
    if prepared.sparse_layers or not prepared.left_dense:
        return
    by_reason: dict[str, list[str]] = {}
    for item in prepared.left_dense:
        by_reason.setdefault(item.reason, []).append(item.layer)
    raise NotApplicable("no layer is eligible, so no file is written (it would be the source "
                        "model under another name): " + "; ".join(
                            f"{_few(layers)}: {why}" for why, layers in by_reason.items()))


def _few(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _join_prepare(variant: export.Variant, model, context: export.ExportContext,
                  seed: int) -> None:
    """A non-chief worker's share of a variant: its distributed fine-tune, no file.

    Only the chief converts and writes; the others take part in the
    variant's ``prepare`` (a sparsity-aware fine-tune under the strategy).
    A preparation that fails fails on the chief too, which records it.
    """
    if variant.prepare is not None:
        keras_api.set_random_seed(seed)
        try:
            variant.prepare(model, context)
        except PruningError as error:
            print(f"[export] {variant.name}: not prepared on this worker: {error}")


def _verify_images(datasets: Datasets, count: int) -> np.ndarray:
    """Up to ``count`` images: the validation split's, then unaugmented training images.

    Agreement is between a file and its own Keras model, so any image of the data
    serves; topping a small validation split up keeps one flipped answer from
    failing a 99% bar on its own (1 of 8 images is 12.5 points).
    """
    split = datasets.val.unbatch() if datasets.sizes.get("val", 0) else datasets.calibration
    if datasets.sizes.get("val", 0) and datasets.sizes["val"] < count:
        split = split.concatenate(datasets.calibration)
    (images,) = [np.asarray(x) for x, _ in split.batch(count).take(1)]
    return images


def _metadata_info(section, variant: str, model_name: str, data_name: str,
                  datasets: Datasets, heads_of=()) -> metadata.ModelInfo:
    """The TFLite metadata of ``variant`` from ``export.metadata`` ('' fields generated)."""
    height, width, _ = datasets.input_shape
    return metadata.ModelInfo(
        name=section.name or f"{model_name}_{variant}",
        description=section.description or (
            f"{data_name} image classifier ({datasets.num_classes} classes), export "
            f"variant {variant}: takes a {height}x{width} RGB image, returns class "
            "probabilities" + _other_heads(heads_of) + "."),
        version=section.version, author=section.author, license=section.license)


def _heads_of(model, classifier: str) -> tuple[str, ...]:
    """``(classifier, *other output names)`` of a multi-head model; () for one output."""
    if not classifier:
        return ()
    return (classifier,) + tuple(n for n in heads.output_names(model) if n != classifier)


def _other_heads(names) -> str:
    """The description's words on a multi-head model's other outputs ('' for one output)."""
    if len(names) < 2:
        return ""
    classifier, others = names[0], names[1:]
    return (f" (output '{classifier}') and its other heads' outputs ({', '.join(others)}). "
            "MediaPipe's ImageClassifier loads it and returns one classification per output, "
            f"head_name the output's name: read the one named '{classifier}'; the others "
            "come back as unlabelled scores, which they are not: read them by name with the "
            "LiteRT interpreter")
