"""Export variants: how a Keras model becomes a ``.tflite`` file, looked up by name.

A variant names its source model (``"baseline"`` or ``"pruned"``), an
optional ``prepare(model, context) -> Prepared`` step (a sparsity-aware
fine-tune of a copy, say) and a converter ``convert(model, context) -> bytes``.
:func:`export_variant` puts the prepared model behind an RGB front
(:mod:`pipeline.export.rgb_front`), converts it, adds the metadata
(:mod:`pipeline.export.metadata`), verifies the file against the prepared
Keras model (:mod:`pipeline.export.parity`) and runs the variant's
``check(path)`` on it; the run's export stage calls it for each variant.

Built in:

* ``baseline_fp32``, ``pruned_fp32``: plain float32 conversion;
* ``pruned_int8``: full-integer quantization (:mod:`pipeline.export.quantize`),
  uint8 or int8 input per ``ExportContext.int8_input``;
* ``pruned_2of4``: 2:4 sparsity-aware fine-tune
  (:mod:`pipeline.export.sparse_finetune`), ``EXPERIMENTAL_SPARSITY``, the
  2:4 pattern checked in the written file (:mod:`pipeline.export.sparse_check`);
* ``pruned_block_fc``: 1x4 block-sparse Dense kernels, stored so TFLite's
  block-sparse FULLY_CONNECTED kernel runs, checked in the written file;
* ``pruned_fp16``: float16 weights, float32 input and output (what the GPU
  delegate runs by default; the CPU dequantizes the weights once at load),
  verified against Keras within :data:`FP16_RTOL`;
* ``pruned_dynamic_int8``: dynamic-range quantization (``Optimize.DEFAULT``
  with no representative data: int8 weights, float activations, float32
  input and output, no calibration), verified by top-1 agreement.

Example:
  >>> @register_variant("pruned_fp32_again", source="pruned", reference="pruned_fp32")
  ... def again(model, context):
  ...     return quantize.keras_converter(model).convert()
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import tensorflow as tf

from pipeline import atomic
from pipeline.export import metadata
from pipeline.export import parity as verify
from pipeline.export import quantize
from pipeline.export import rgb_front
from pipeline.export import sparse_check
from pipeline.export import sparse_finetune
from pipeline.errors import PruningError, RegistryError
from pipeline.registry import Registry

SOURCES = ("baseline", "pruned")
# pruned_fp16's tolerance, relative to the largest Keras output. A float16 weight is within
# 2^-11 (4.9e-4) of its float32 value, and the errors of the layers add up with depth:
# measured on 500 validation images, 1.0e-3 for the shipped VGG and 1.3e-3 for a :quick run's
# pruned one, but 1.2e-2 for a pruned MobileNetV2 0.35 (53 conv layers, BatchNorm folded in;
# tests/integration/foreign_models_test.py), so 5e-2. Dynamic-range int8 weights move the
# outputs by 1.9e-2 to 3.6e-2: that variant is judged by top-1 agreement instead.
FP16_RTOL = 5e-2


@dataclasses.dataclass(frozen=True)
class ExportContext:
    """What a variant may use besides the model.

    Attributes:
      calibration: unbatched ``(image, label)`` training examples, preprocessed.
      samples: how many of them a representative dataset should yield.
      int8_input: input (and output) type of integer variants: uint8 or int8.
      train: repeating ``(images, labels)`` training batches (sparse fine-tunes).
      steps_per_epoch: training batches per epoch.
      sparse: the sparse fine-tune's :class:`pipeline.export.sparse_finetune.SparseRecipe`.
      cluster: the :class:`pipeline.training.distribute.Cluster` the sparse
        fine-tunes train under; None trains in this process alone.
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess`,
        what ``calibration``, ``train`` and the check images are (None: ``unit``).
      classifier: a multi-head model's classifier output (its layer name; ''
        for a model of one output): the one the metadata labels, the parity
        check judges by top-1 agreement and the sparse fine-tunes train on the
        labels (the other heads held to the source model's outputs).
    """

    calibration: Any = None
    samples: int = 200
    int8_input: str = "uint8"
    train: Any = None
    steps_per_epoch: int = 0
    sparse: sparse_finetune.SparseRecipe = sparse_finetune.SparseRecipe()
    cluster: Any = None
    preprocess: Any = None
    classifier: str = ""

    def representative_dataset(self):
        """Yields ``[image_batch_of_1]`` lists, as ``TFLiteConverter`` expects."""
        if self.calibration is None:
            raise PruningError("this export variant needs calibration data; none was given: "
                               "pass calibration=<unbatched (image, label) dataset>",
                               argument="calibration")
        for image, _ in self.calibration.take(self.samples):
            yield [tf.expand_dims(image, 0)]

    def representative_for(self, model) -> Callable:
        """:meth:`representative_dataset` with gray images repeated to an RGB model's input."""
        channels = model.input_shape[-1]

        def generate():
            for (image,) in self.representative_dataset():
                if image.shape[-1] != channels:
                    image = tf.repeat(image, channels, axis=-1)
                yield [image]
        return generate

    def need_train(self, name: str) -> None:
        if self.train is None or not (self.sparse.steps or self.steps_per_epoch):
            raise PruningError(f"export variant '{name}' fine-tunes and needs training data; "
                               "none was given: pass train=<repeating (images, labels) batches>",
                               argument="train")


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A variant's Keras model before conversion, with notes for the report.

    Attributes:
      model: the Keras model to convert.
      notes: sentences for the report.
      sparse_layers: layers the preparation made sparse.
      left_dense: the layers a sparse preparation could not make sparse, and why.
    """

    model: Any
    notes: tuple[str, ...] = ()
    sparse_layers: tuple[str, ...] = ()
    left_dense: tuple[sparse_finetune.Ineligible, ...] = ()


@dataclasses.dataclass(frozen=True)
class Variant:
    """A registered export variant."""

    name: str
    source: str
    convert: Callable[[Any, ExportContext], bytes]
    version: int = 1  # bump when the converter's output changes, so stamps expire
    prepare: Callable[[Any, ExportContext], Prepared] | None = None
    check: Callable[[str, Prepared], list[str]] | None = None  # on the written file; raises
    reference: str = ""  # the dense variant its size and latency are compared with
    rtol: float | None = None  # the float parity tolerance, when not Checks.rtol
    by_agreement: bool = False  # float input, integer weights: judged by top-1 agreement
    note: str = ""  # what the file is, the report's first note on it


_VARIANTS: Registry[Variant] = Registry("export variant")


def register_variant(name: str, source: str, version: int = 1, prepare=None, check=None,
                     reference: str = "", rtol: float | None = None, by_agreement: bool = False,
                     note: str = ""):
    """Decorator registering ``convert(model, context) -> tflite bytes`` as ``name``.

    Args:
      name: the variant's name, used in ``export.variants`` and file names.
      source: ``"baseline"`` or ``"pruned"``: which Keras model it converts.
      version: bump when the converter changes, so cached exports are redone.
      prepare: optional ``prepare(model, context) -> Prepared``, run before
        conversion (it must not change ``model``; work on a copy).
      check: optional ``check(path, prepared) -> list of notes``, run on the
        written file; it raises when the file is wrong.
      reference: a dense variant to compare size and latency with in the report.
      rtol: the float parity tolerance of this variant (None: ``Checks.rtol``).
      by_agreement: verify a float-input file by top-1 agreement
        (``Checks.min_agreement``) instead of a tolerance.
      note: one sentence on what the file is, for the report.

    Raises:
      RegistryError: ``name`` is taken or ``source`` is unknown.
    """
    if source not in SOURCES:
        raise RegistryError(f"variant '{name}': source must be one of {SOURCES}, got {source!r}")

    def decorate(fn):
        _VARIANTS.add(name, Variant(name, source, fn, version, prepare, check, reference,
                                    rtol, by_agreement, note))
        return fn
    return decorate


def get_variant(name: str) -> Variant:
    """The variant registered as ``name``.

    Raises:
      RegistryError: unknown name; the message lists the valid ones.
    """
    return _VARIANTS.get(name)


def variant_names() -> list[str]:
    return _VARIANTS.names()


def convert_fp32(model, context: ExportContext) -> bytes:
    """Plain float32 conversion, no optimizations."""
    del context
    return quantize.keras_converter(model).convert()


def convert_sparse(model, context: ExportContext) -> bytes:
    """Float32 with ``EXPERIMENTAL_SPARSITY``: sparse weights stored in a sparse format."""
    del context
    converter = quantize.keras_converter(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return converter.convert()


def convert_fp16(model, context: ExportContext) -> bytes:
    """Float16 weights; input, output and arithmetic on the CPU stay float32."""
    del context
    converter = quantize.keras_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def convert_dynamic_int8(model, context: ExportContext) -> bytes:
    """Dynamic-range quantization: int8 weights, float activations, no representative data."""
    del context
    converter = quantize.keras_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def convert_int8(model, context: ExportContext) -> bytes:
    """Full-integer quantization calibrated on ``context``'s training images."""
    return quantize.convert_int8(model, context.representative_for(model), context.int8_input,
                                 context.preprocess)


def _sparse_prepare(mode: str, name: str):
    def prepare(model, context: ExportContext) -> Prepared:
        context.need_train(name)
        tuned = sparse_finetune.finetune_sparse(model, mode, context.sparse, context.train,
                                                context.steps_per_epoch, context.cluster,
                                                classifier=context.classifier)
        if tuned.pruned:
            notes = (f"{mode}: sparse fine-tune ({context.sparse.epochs} epoch(s) of "
                     f"{context.sparse.steps or context.steps_per_epoch} steps) of "
                     f"{', '.join(tuned.pruned)}",)
        else:
            notes = (f"{mode}: no layer is eligible, so this file is the source model "
                     "converted with EXPERIMENTAL_SPARSITY, not sparse",)
        notes += _left_dense_notes(tuned.ineligible)
        return Prepared(tuned.model, notes, tuned.pruned, tuned.ineligible)
    return prepare


def _left_dense_notes(ineligible) -> tuple[str, ...]:
    """One note listing the dense layers by reason, and one per fix that would make some sparse."""
    by_reason = _layers_by(ineligible, lambda item: item.reason)
    if not by_reason:
        return ()
    notes = ("left dense (not eligible): "
             + "; ".join(f"{', '.join(layers)}: {why}" for why, layers in by_reason.items()),)
    return notes + tuple(f"{fix} to make {', '.join(layers)} eligible"
                         for fix, layers in _layers_by(ineligible, lambda item: item.fix).items()
                         if fix)


def _layers_by(ineligible, key: Callable) -> dict[str, list[str]]:
    """Layer names grouped by ``key(item)``, in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for item in ineligible:
        grouped.setdefault(key(item), []).append(item.layer)
    return grouped


def _check_2of4(path: str, prepared: Prepared) -> list[str]:
    return [sparse_check.verify_2of4(path, prepared.model)]


def _check_block_fc(path: str, prepared: Prepared) -> list[str]:
    return [sparse_check.verify_block_fc(path, prepared.sparse_layers)]


register_variant("baseline_fp32", source="baseline")(convert_fp32)
register_variant("pruned_fp32", source="pruned")(convert_fp32)
register_variant("pruned_int8", source="pruned", reference="pruned_fp32")(convert_int8)
register_variant("pruned_2of4", source="pruned", prepare=_sparse_prepare("2of4", "pruned_2of4"),
                 check=_check_2of4, reference="pruned_fp32")(convert_sparse)
register_variant("pruned_block_fc", source="pruned",
                 prepare=_sparse_prepare("block_fc", "pruned_block_fc"), check=_check_block_fc,
                 reference="pruned_fp32")(convert_sparse)
register_variant("pruned_fp16", source="pruned", reference="pruned_fp32", rtol=FP16_RTOL,
                 note="float16 weights, float32 input and output: the GPU delegate computes in "
                      "float16, the CPU dequantizes the weights to float32 once at load and "
                      "computes in float32")(convert_fp16)
register_variant("pruned_dynamic_int8", source="pruned", reference="pruned_fp32",
                 by_agreement=True,
                 note="dynamic-range quantization: int8 weights, activations quantized at run "
                      "time, float32 input and output, no calibration data")(convert_dynamic_int8)


@dataclasses.dataclass(frozen=True)
class Checks:
    """How a written file is verified (see :mod:`pipeline.export.parity`).

    Attributes:
      images: validation images as the Keras model takes them (its preprocessing).
      rtol: float variants' tolerance, relative to the largest Keras output.
      min_agreement: integer variants' minimum top-1 agreement.
    """

    images: Any
    rtol: float = 1e-4
    min_agreement: float = 0.99


def export_variant(variant: Variant, model, context: ExportContext, path: str,
                   labels_path: str, info, checks: Checks) -> tuple[Any, dict]:
    """Prepares, converts, adds metadata, writes and verifies one variant.

    The file is written to a temporary name beside ``path``, verified there
    (parity with the prepared Keras model, then the variant's own check) and
    only then moved to ``path``: a variant that fails leaves no file behind.

    Args:
      variant: the registered :class:`Variant`.
      model: its source Keras model (left unchanged).
      context: the :class:`ExportContext`.
      path: where the ``.tflite`` goes.
      labels_path: the labels file to pack into the metadata.
      info: the :class:`pipeline.export.metadata.ModelInfo` of the metadata.
      checks: the :class:`Checks`.

    Returns:
      ``(keras_model, record)``: the Keras model the file was converted from
      (the prepared one) and ``{"parity": {...}, "notes": [...]}``.

    Raises:
      PruningError: preparation, conversion, metadata or a check failed; the
        message names the variant.
    """
    prepared = variant.prepare(model, context) if variant.prepare else Prepared(model)
    front = rgb_front.with_rgb_front(prepared.model, context.preprocess)
    shipped = metadata.add_metadata(variant.convert(front, context), labels_path, info,
                                    context.preprocess, context.classifier)
    with atomic.path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(shipped)
        rtol = checks.rtol if variant.rtol is None else variant.rtol
        parity = verify.verify_parity(tmp, prepared.model, checks.images, variant.name, rtol,
                                      checks.min_agreement, context.preprocess,
                                      variant.by_agreement, context.classifier)
        try:
            checked = variant.check(tmp, prepared) if variant.check else []
        except PruningError as e:
            raise type(e)(f"variant '{variant.name}': {e}".replace(tmp, path)) from e
    notes = ([variant.note] if variant.note else []) + list(prepared.notes)
    notes += [_parity_note(parity)] + list(checked)
    return prepared.model, {"parity": parity, "notes": notes}


def _parity_note(parity: dict) -> str:
    judged = {"rtol": "judged by the output difference",
              "agreement": "judged by top-1 agreement"}.get(parity.get("criterion"), "")
    heads = ""
    if parity.get("outputs"):
        heads = (" (each output relative to its own scale: " + ", ".join(
            f"{name} {rel:.2g}" for name, rel in parity["outputs"].items())
                 + f"; top-1 agreement of {parity['classifier_output']})")
    return (f"verified on {parity['examples']} validation images ({parity['input_dtype']} "
            f"input): max output difference {parity['max_abs_diff']:.2g} "
            f"(relative {parity['max_rel_diff']:.2g}){heads}, top-1 agreement "
            f"{parity['agreement']:.1%}" + (f", {judged}" if judged else ""))
