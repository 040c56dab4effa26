"""What the stages return: typed results, each an artifact's identity and its stamped record.

A result names its artifact (``path``, relative to the workdir) and the
``key`` it was made from (the hash of everything it depends on: the config
sections the stage read and its inputs' keys); its ``record`` is what the
stage measured, a dataclass that is stamped beside the artifact as its
``dataclasses.asdict`` (see :meth:`pipeline.run.store.Store.cached`) and
read back on a rerun.
:mod:`pipeline.run.report` builds ``report.json`` from these results.

Example:
  >>> base = ModelResult(model, "baseline.keras", "k", ModelRecord(0.9, 10**6, 10**4))
  >>> summary(base.record)
  {'accuracy': 0.9, 'macs': 1000000, 'params': 10000, 'seconds': 0.0}
"""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """A Keras model's measurements: the stamp of ``baseline.keras`` and the fine-tunes.

    Attributes:
      accuracy: test accuracy (Keras).
      macs: multiply-accumulates of one inference.
      params: parameter count.
      seconds: time the stage took.
      source: the baseline's origin: ``model.path`` (absolute) or ``trained:<name>``.
      history: per-epoch training logs, for a trained model.
      epochs: epochs trained (for the final model of an iterative pruning, all steps').
      bn_batches: training batches its BatchNorm statistics were re-estimated on
        after training (0: not re-estimated; see :mod:`pipeline.training.bn_stats`).
    """

    accuracy: float
    macs: int
    params: int
    seconds: float = 0.0
    source: str | None = None
    history: dict | None = None
    epochs: int | None = None
    bn_batches: int = 0


@dataclasses.dataclass(frozen=True)
class ModelResult:
    """A model-making stage's output (baseline, fine-tune).

    Attributes:
      model: the Keras model, saved at ``path``.
      path, key: see the module doc.
      record: its :class:`ModelRecord`.
    """

    model: Any
    path: str
    key: str
    record: ModelRecord


@dataclasses.dataclass(frozen=True)
class ScanRecord:
    """The sensitivity scan's stamp (the curves are in ``sensitivity.json``).

    Attributes:
      seconds: time the scan took.
      baseline_accuracy: validation accuracy of the unpruned model.
    """

    seconds: float
    baseline_accuracy: float


@dataclasses.dataclass(frozen=True)
class PruneRecord:
    """One pruning step's measurements, before fine-tuning (the stamp of its model).

    Attributes:
      accuracy: test accuracy of the pruned, not yet fine-tuned model.
      macs: its multiply-accumulates.
      params: its parameter count.
      removed: the plan's fractions removed (``{"macs": ..., "filters": ...}``).
      plan: the plan's file, relative to the workdir.
      seconds: time the step took.
      bn_batches: training batches its BatchNorm statistics were re-estimated on
        before ``accuracy`` was measured (0: the statistics pruning left).
      round_to: the alignment, ``{"asked": prune.round_to, "used": ...}``: a finer
        one when the asked one cannot reach the target (:mod:`pipeline.run.alignment`).
    """

    accuracy: float
    macs: int
    params: int
    removed: dict
    plan: str
    seconds: float = 0.0
    bn_batches: int = 0
    round_to: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PrunedModel:
    """The prune stage's output for one step: the narrower model and its plan.

    Attributes:
      model: the pruned Keras model, saved at ``path``.
      path, key: see the module doc.
      record: its :class:`PruneRecord`.
      plan: the :class:`pipeline.PrunePlan` that made it (saved at ``record.plan``).
    """

    model: Any
    path: str
    key: str
    record: PruneRecord
    plan: Any


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of an iterative pruning, as ``report.json`` lists it under ``pruned.steps``."""

    step: int
    ratio: float
    plan: str
    keras: str
    macs: int
    accuracy_before_finetune: float
    accuracy: float
    epochs: int


@dataclasses.dataclass(frozen=True)
class Pruning:
    """Prune-and-fine-tune's output.

    Attributes:
      pruned: the last step's model before fine-tuning.
      tuned: the final fine-tuned model (``pruned.keras``).
      plan: the plan from the baseline to ``tuned`` (the steps' plans composed).
      removed: what ``plan`` removes overall (``{"macs": ..., "filters": ...}``).
      steps: one :class:`Step` per step when there were several, else empty.
    """

    pruned: PrunedModel
    tuned: ModelResult
    plan: Any
    removed: dict
    steps: tuple[Step, ...] = ()


@dataclasses.dataclass(frozen=True)
class ExportRecord:
    """One exported ``.tflite``'s record (its stamp).

    Attributes:
      keras: the Keras model it was converted from, relative to the workdir.
      macs: that model's multiply-accumulates.
      params: its parameter count.
      parity: the check against the Keras model (``examples``, ``input_dtype``,
        ``max_abs_diff``, ``max_rel_diff``, ``agreement``).
      notes: what was verified and what was not eligible.
      reference: the dense variant it is compared with ('' for none).
      seconds: time the export took.
    """

    keras: str
    macs: int
    params: int
    parity: dict
    notes: list
    reference: str = ""
    seconds: float = 0.0


OK, FAILED, NOT_APPLICABLE = "ok", "failed", "not_applicable"
STATUSES = (OK, FAILED, NOT_APPLICABLE)  # a variant's outcome in the export stage


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """The export stage's output for one variant, made or not.

    Attributes:
      name: the variant.
      source: ``"baseline"`` or ``"pruned"``, the Keras model it converts.
      path, key: the ``.tflite`` and its key (see the module doc); no file
        exists at ``path`` unless ``status`` is ``"ok"``.
      record: its :class:`ExportRecord`; None when the variant was not made.
      status: ``"ok"`` (written and verified), ``"failed"`` (preparing,
        converting or verifying it raised) or ``"not_applicable"`` (nothing in
        the model takes the variant's optimisation).
      reason: why it was not made, one line ('' when ``"ok"``).
    """

    name: str
    source: str
    path: str
    key: str
    record: ExportRecord | None
    status: str = OK
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclasses.dataclass(frozen=True)
class Measurement:
    """A ``.tflite`` run by LiteRT: the content (and stamp) of ``<variant>.eval.json``.

    Attributes:
      accuracy: top-1 test accuracy.
      examples: test images.
      seconds: time the accuracy run took.
      latency_ms: ``{"<threads>": {"p50", "p90", "mean"}}``, empty when timing is off.
    """

    accuracy: float
    examples: int
    seconds: float
    latency_ms: dict


@dataclasses.dataclass(frozen=True)
class PairedTiming:
    """A variant timed against its reference, interleaved and paired (the stamp of
    ``tflite/<variant>.paired.json``, see :mod:`pipeline.run.speed_notes`).

    Attributes:
      reference: the variant it was timed against.
      repeats: independent repeats (each reloads both files and interleaves their runs).
      latency: ``{"<threads>": {"speedup", "speedup_min", "speedup_max", "p50_ms",
        "p50_range_ms", "reference_p50_ms", "reference_p50_range_ms"}}``: ``speedup``
        is the median over repeats of the reference's p50 over the variant's (> 1:
        the variant is faster), ``_min``/``_max`` its spread over the repeats, the
        p50s medians over repeats with their min-max ranges, in ms.
    """

    reference: str
    repeats: int
    latency: dict


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The evaluate stage's output for one variant.

    Attributes:
      name: the variant.
      measured: its :class:`Measurement`.
      notes: size, latency and accuracy against the dense reference variant.
    """

    name: str
    measured: Measurement
    notes: tuple[str, ...] = ()


def summary(record) -> dict:
    """A record's fields for ``report.json``: those set, without the training history."""
    return {k: v for k, v in dataclasses.asdict(record).items()
            if v is not None and k != "history"}
