"""The run's report: ``report.json`` (machine-readable) and ``report.md`` (a table).

``report.json`` keys:

* ``config``: the full config of the run;
* ``baseline``: the Keras baseline (``keras`` path, ``framework``: the Keras
  it is a model of and loads in, ``"Keras 3.15.1"`` or ``"tf_keras 2.21.0"``;
  test ``accuracy``, ``macs``, ``params``, ``source``, ``seconds``);
* ``pruned``: the pruned model (``keras`` path, ``framework``) before
  (``accuracy_before_finetune``) and after fine-tuning, its ``plan``, the fractions ``removed`` and ``round_to``
  (``{"asked": ..., "used": ...}``, the last step's alignment: finer than
  asked when that cannot reach the target, see :mod:`pipeline.run.alignment`);
* ``variants``: one entry per requested export variant, in order: ``name``,
  ``source``, ``status`` (``ok``, ``failed`` or ``not_applicable``, see
  :mod:`pipeline.run.stages.export`), ``reason`` (one line, ``""`` when
  ok), ``tflite`` (path relative to the workdir), ``keras`` (the model it
  was converted from), ``macs``, ``params``, ``size_bytes``, ``accuracy``
  (LiteRT, test split) and ``latency_ms`` (``{"<threads>": {"p50", "p90",
  "mean"}}``, empty when latency profiling is off), ``parity`` (the export's
  check against the Keras model: ``examples``, ``input_dtype``,
  ``max_abs_diff``, ``max_rel_diff``, ``agreement``) and ``notes`` (what was
  verified, which layers were not eligible for sparsity and why, and
  measured size, accuracy and paired latency against the dense reference
  variant, including "no measurable difference"). A variant that was not
  made has every key, with ``tflite``, ``keras``, ``macs``, ``params``,
  ``size_bytes``, ``accuracy``, ``latency_ms`` and ``parity`` null and
  ``notes`` empty;
* ``sensitivity``: ``sensitivity.json`` when the scan ran (validation
  accuracy per group and ratio, see :mod:`pipeline.pruning.sensitivity`);
* ``distribute``: how training ran: ``strategy`` (``none``, ``mirrored`` or
  ``multi_worker``), ``num_workers`` and ``replicas`` (see
  :mod:`pipeline.training.distribute`);
* ``pruned.latency_target``: with ``prune.target=latency``, the budget,
  predicted and measured latency and each round (:mod:`pipeline.latency.refine`);
* ``plots``: figure name -> PNG path relative to the workdir
  (:mod:`pipeline.run.plots`), linked from ``report.md``;
* ``pruned.steps``: per-step ``ratio``, ``plan``, ``keras``, ``macs`` and
  accuracies before and after fine-tuning (iterative pruning, one entry per
  step).

A family run (``prune.ratio`` a tuple, :mod:`pipeline.run.family`) writes
this report in each ratio's folder; its top-level report has ``config``,
``baseline``, ``variants`` (the baseline's files), ``family``
(:mod:`pipeline.run.family_report`), ``sensitivity``, ``distribute`` and
``plots``, and no ``pruned``.
"""
from __future__ import annotations

import dataclasses
import os

from pipeline import keras_api
from pipeline.run import alignment, family_report
from pipeline.run.results import (FAILED, NOT_APPLICABLE, OK, Evaluation, ExportResult,
                                  ModelResult, Pruning, summary)

# The shell's status of a run that finished with every requested variant made or not
# applicable, and of one that finished but a variant failed (1 and 128 + signal: signals.py).
SUCCESS, VARIANT_FAILED = 0, 3


def build(config: dict, base: ModelResult, pruning: Pruning, exported: list[ExportResult],
          evaluations: dict[str, Evaluation], workdir: str) -> dict:
    """Assembles the report from the stages' typed results (see the module doc for keys).

    Args:
      config: the run's whole config, as a dict.
      base: the baseline stage's output.
      pruning: the prune-and-fine-tune stage's output.
      exported: the export stage's output.
      evaluations: the evaluate stage's output, by variant name.
      workdir: the run's directory (file sizes are read there).

    Returns:
      The report's body (without ``distribute``, ``sensitivity`` and ``plots``,
      which the report stage adds).
    """
    tuned = pruning.tuned
    return {
        "config": config,
        "baseline": {"keras": base.path, "framework": keras_api.describe(base.model),
                     **summary(base.record)},
        "pruned": {"keras": tuned.path, "framework": keras_api.describe(tuned.model),
                   "plan": "plan.json", **summary(tuned.record),
                   "accuracy_before_finetune": pruning.pruned.record.accuracy,
                   "removed": dict(pruning.removed),
                   "finetune_epochs": tuned.record.epochs or 0,
                   "steps": [dataclasses.asdict(s) for s in pruning.steps],
                   "latency_target": pruning.plan.report,
                   "round_to": pruning.pruned.record.round_to},
        "variants": [variant(item, evaluations.get(item.name), workdir) for item in exported],
    }


_NOT_MADE = dict.fromkeys(("tflite", "keras", "macs", "params", "size_bytes", "accuracy",
                           "latency_ms", "parity"))


def variant(item: ExportResult, evaluation: Evaluation | None, workdir: str) -> dict:
    """One entry of ``variants`` (keys: the module doc); sizes are read in ``workdir``."""
    head = {"name": item.name, "source": item.source, "status": item.status,
            "reason": item.reason}
    if not item.ok:
        return {**head, **_NOT_MADE, "notes": []}
    record, measured = item.record, evaluation.measured
    return {
        **head, "tflite": item.path, "keras": record.keras,
        "macs": record.macs, "params": record.params,
        "size_bytes": os.path.getsize(os.path.join(workdir, item.path)),
        "accuracy": measured.accuracy, "latency_ms": measured.latency_ms,
        "parity": record.parity, "notes": list(record.notes) + list(evaluation.notes),
    }


def exit_status(report: dict) -> int:
    """The shell's status of a finished run: :data:`VARIANT_FAILED` (3) if a variant failed.

    A variant that is not applicable was explained, not failed: status 0.
    A non-chief worker's report has no variants: status 0. In a family run
    (``prune.ratio`` a tuple), a ratio that failed counts as a failed variant.

    Example:
      >>> exit_status({"variants": [{"name": "pruned_int8", "status": "failed"}]})
      3
    """
    return VARIANT_FAILED if failures(report) or ratio_failures(report) else SUCCESS


def failures(report: dict) -> list[str]:
    """One line per failed variant, ``"<name>: <reason>"`` (for the command line's stderr);
    a family's (:mod:`pipeline.run.family_report`) name their ratio."""
    lines = [f"{v['name']}: {v['reason']}" for v in report.get("variants", [])
             if v.get("status", OK) == FAILED]
    return lines + (family_report.variant_failures(report["family"]) if "family" in report
                    else [])


def ratio_failures(report: dict) -> list[str]:
    """One line per ratio of a family run that failed, ``"<ratio>: <reason>"``."""
    return family_report.ratio_failures(report["family"]) if "family" in report else []


def latency_line(target: dict) -> str:
    """One line on a ``prune.target=latency`` run: budget, predicted and measured, where."""
    measured = (f"measured {target['measured_ms']:.3f} ms" if target.get("measured")
                else "not measured (device table)")
    return (f"Latency target: budget {target['budget_ms']:.3f} ms ({1 - target['ratio']:.0%} of "
            f"{target['full_ms']:.3f} ms, 1 thread, {target['device']}), predicted "
            f"{target['predicted_ms']:.3f} ms, {measured}, {len(target['rounds'])} round(s).")


def markdown(report: dict) -> str:
    """A markdown table of the variants, headed by the baseline and pruned accuracies."""
    base, pruned = report["baseline"], report["pruned"]
    lines = [
        "# Pruning report",
        "",
        f"Baseline ({_file(base)}): test accuracy {base['accuracy']:.4f}, "
        f"{_si(base['macs'])} MACs, {_si(base['params'])} params.",
        f"Pruned ({_file(pruned)}{_in_steps(pruned)}): test accuracy "
        f"{pruned['accuracy_before_finetune']:.4f} before and "
        f"{pruned['accuracy']:.4f} after {pruned['finetune_epochs']} fine-tuning epochs"
        f"{' in all' if len(pruned.get('steps', [])) > 1 else ''}, "
        f"{_si(pruned['macs'])} MACs, {_si(pruned['params'])} params.",
        *([latency_line(pruned["latency_target"])] if pruned.get("latency_target") else []),
        *alignment.line(pruned.get("round_to")),
        "",
        "| variant | accuracy | MACs | params | size | latency p50 (ms) | file |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for v in report["variants"]:
        if v.get("status", OK) != OK:
            lines.append(f"| {v['name']} | {_outcome(v)} | - | - | - | - | - |")
            continue
        latency = ", ".join(f"{t} thr {s['p50']:.3f}" for t, s in sorted(v["latency_ms"].items()))
        lines.append(f"| {v['name']} | {v['accuracy']:.4f} | {_si(v['macs'])} | "
                     f"{_si(v['params'])} | {v['size_bytes'] / 1024:.1f} KiB | "
                     f"{latency or '-'} | {v['tflite']} |")
    lines += _notes(report["variants"])
    lines += _steps(pruned.get("steps", [])) + _plots(report.get("plots", {}))
    return "\n".join(lines) + "\n"


def _notes(variants: list) -> list[str]:
    """Per-variant notes: verification, sparsity checks, measured gains (or their absence)."""
    lines = []
    for v in variants:
        notes = list(v.get("notes") or [])
        if v.get("status", OK) != OK:
            notes = [f"{_OUTCOMES[v['status']]}, no file written: {v['reason']}"]
        if notes:
            lines += ["", f"**{v['name']}**", ""] + [f"- {note}" for note in notes]
    return ["", "## Variant notes"] + lines if lines else []


_OUTCOMES = {FAILED: "failed", NOT_APPLICABLE: "not applicable"}


def _outcome(variant: dict) -> str:
    """A table cell for a variant that was not made (the reason in full is in the notes)."""
    if variant["status"] == NOT_APPLICABLE:
        return "not applicable"
    reason = variant["reason"].replace("|", "\\|")
    return f"failed: {reason[:117] + '...' if len(reason) > 120 else reason}"


def _file(model: dict) -> str:
    """``"pruned.keras, Keras 3.15.1"``: a Keras model's file and the Keras it loads in."""
    framework = model.get("framework")  # reports written before it was recorded lack it
    return f"`{model['keras']}`, {framework}" if framework else f"`{model['keras']}`"


def _in_steps(pruned: dict) -> str:
    steps = len(pruned.get("steps", []))
    return f", {steps} steps; 'before' is before the last step's fine-tuning" if steps > 1 else ""


def _steps(steps: list) -> list[str]:
    """A table of the iterative pruning steps (none for a single step)."""
    if len(steps) < 2:
        return []
    lines = ["", "| step | ratio of the step's input | MACs | accuracy before fine-tuning | "
             "after | plan |", "| ---: | ---: | ---: | ---: | ---: | --- |"]
    for s in steps:
        lines.append(f"| {s['step']} | {s['ratio']:.1%} | {_si(s['macs'])} | "
                     f"{s['accuracy_before_finetune']:.4f} | {s['accuracy']:.4f} | {s['plan']} |")
    return lines


_PLOT_TITLES = {
    "accuracy_vs_macs": "Accuracy against MACs (Pareto front ringed)",
    "accuracy_vs_latency": "Accuracy against latency, 1 thread p50 (Pareto front ringed)",
    "channels": "Channels per layer before and after pruning",
    "sensitivity": "Sensitivity: validation accuracy with one group pruned",
}


def _plots(plots: dict) -> list[str]:
    """Markdown image links, relative to the workdir where report.md lives."""
    lines = []
    for name, path in plots.items():
        title = _PLOT_TITLES.get(name, name)
        lines += ["", f"## {title}", "", f"![{title}]({path})"]
    return lines


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
