"""The export stage: each of ``export.variants`` as a verified ``tflite/<name>.tflite``."""
from __future__ import annotations

import functools
import os
import time

import numpy as np
import tf_keras

from pipeline.data.datasets import Datasets
from pipeline.export import metadata
from pipeline.export import variants as export
from pipeline.export.sparse_finetune import SparseRecipe
from pipeline.fingerprint import fingerprint
from pipeline.pruning.counting import count_macs, count_params
from pipeline.run.results import ExportRecord, ExportResult, ModelResult
from pipeline.run.stages.data import Data
from pipeline.run.store import Store
from pipeline.training.distribute import Cluster


def export_variants(section, sources: dict[str, ModelResult], data: Data, store: Store, *,
                    model_name: str, data_name: str, seed: int,
                    cluster: Cluster | None = None) -> list[ExportResult]:
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

    Returns:
      One :class:`ExportResult` per variant, in order (none on a non-chief worker).

    Raises:
      PruningError: a variant failed to convert or verify; the message names it.
    """
    e, datasets = section, data.datasets
    cluster = Cluster() if cluster is None else cluster
    context = export.ExportContext(
        calibration=datasets.calibration, samples=e.calibration_samples, int8_input=e.int8_input,
        train=datasets.train, steps_per_epoch=datasets.steps_per_epoch,
        sparse=SparseRecipe(epochs=e.sparse_epochs, steps=e.sparse_steps, lr=e.sparse_lr,
                            block_sparsity=e.block_sparsity), cluster=cluster)
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
            _metadata_info(e.metadata, name, model_name, data_name, datasets),
            lambda: export.Checks(images(), e.float_rtol, e.int8_min_agreement), seed)
        exported = store.cached(path, key, compute, ExportRecord)
        if exported.reused:
            print(f"[export] up to date: {path}")
        else:
            print(f"[export] {path} ({os.path.getsize(store.path(path)) / 1024:.1f} KiB): "
                  + "; ".join(exported.record.notes))
        made.append(ExportResult(name, variant.source, path, key, exported.record))
    return made


def _export(variant: export.Variant, source: ModelResult, context: export.ExportContext,
            store: Store, path: str, labels: str, info: metadata.ModelInfo, checks, seed: int):
    """Converts, writes and verifies one variant; ``export_variant`` writes the file.

    ``checks()`` makes the :class:`pipeline.export.variants.Checks`: the
    verification images are read only when a variant is exported.
    """
    start = time.time()
    tf_keras.utils.set_random_seed(seed)
    model, checked = export.export_variant(variant, source.model, context, store.path(path),
                                           labels, info, checks())
    keras_path = source.path
    if variant.prepare is not None:
        keras_path = os.path.relpath(store.save_model(f"tflite/{variant.name}.keras", model),
                                     store.workdir)
    return None, ExportRecord(keras=keras_path, macs=count_macs(model), params=count_params(model),
                              parity=checked["parity"], notes=list(checked["notes"]),
                              reference=variant.reference, seconds=time.time() - start)


def _join_prepare(variant: export.Variant, model, context: export.ExportContext,
                  seed: int) -> None:
    """A non-chief worker's share of a variant: its distributed fine-tune, no file.

    Only the chief converts and writes; the others take part in the
    variant's ``prepare`` (a sparsity-aware fine-tune under the strategy).
    """
    if variant.prepare is not None:
        tf_keras.utils.set_random_seed(seed)
        variant.prepare(model, context)


def _verify_images(datasets: Datasets, count: int) -> np.ndarray:
    """Up to ``count`` validation images (training images if there is no validation split)."""
    split = datasets.val.unbatch() if datasets.sizes.get("val", 0) else datasets.calibration
    (images,) = [np.asarray(x) for x, _ in split.batch(count).take(1)]
    return images


def _metadata_info(section, variant: str, model_name: str, data_name: str,
                  datasets: Datasets) -> metadata.ModelInfo:
    """The TFLite metadata of ``variant`` from ``export.metadata`` ('' fields generated)."""
    height, width, _ = datasets.input_shape
    return metadata.ModelInfo(
        name=section.name or f"{model_name}_{variant}",
        description=section.description or (
            f"{data_name} image classifier ({datasets.num_classes} classes), export "
            f"variant {variant}: takes a {height}x{width} RGB image, returns class "
            "probabilities."),
        version=section.version, author=section.author, license=section.license)
