"""The run's report: ``report.json`` (machine-readable) and ``report.md`` (a table).

``report.json`` keys:

* ``config``: the full config of the run;
* ``baseline``: the Keras baseline (``keras`` path, test ``accuracy``,
  ``macs``, ``params``, ``source``, ``seconds``);
* ``pruned``: the pruned model before (``accuracy_before_finetune``) and
  after fine-tuning, its ``plan`` and the fractions ``removed``;
* ``variants``: one entry per export variant: ``name``, ``tflite`` (path
  relative to the workdir), ``keras`` (the model it was converted from),
  ``macs``, ``params``, ``size_bytes``, ``accuracy`` (LiteRT, test split)
  and ``latency_ms`` (``{"<threads>": {"p50", "p90", "mean"}}``, empty when
  latency profiling is off).
"""
from __future__ import annotations

import os


def build(config, base, pruned, tuned, exported, evaluations: dict, workdir: str) -> dict:
    """Assembles the report from the stages' outputs (see the module doc for keys)."""
    variants = []
    for item in exported:
        result = evaluations[item.name]
        variants.append({
            "name": item.name, "source": item.source, "tflite": item.path,
            "keras": item.record["keras"], "macs": item.record["macs"],
            "params": item.record["params"],
            "size_bytes": os.path.getsize(os.path.join(workdir, item.path)),
            "accuracy": result["accuracy"], "latency_ms": result.get("latency_ms", {}),
        })
    return {
        "config": config.to_dict(),
        "baseline": {"keras": base.path, **_summary(base.record)},
        "pruned": {"keras": tuned.path, "plan": "plan.json", **_summary(tuned.record),
                   "accuracy_before_finetune": pruned.record["accuracy"],
                   "removed": pruned.record.get("removed", {}),
                   "finetune_epochs": tuned.record.get("epochs", 0)},
        "variants": variants,
    }


def _summary(record: dict) -> dict:
    keys = ("accuracy", "macs", "params", "seconds", "source", "epochs")
    return {k: record[k] for k in keys if k in record}


def markdown(report: dict) -> str:
    """A markdown table of the variants, headed by the baseline and pruned accuracies."""
    base, pruned = report["baseline"], report["pruned"]
    lines = [
        "# Pruning report",
        "",
        f"Baseline (Keras): test accuracy {base['accuracy']:.4f}, {_si(base['macs'])} MACs, "
        f"{_si(base['params'])} params.",
        f"Pruned (Keras): test accuracy {pruned['accuracy_before_finetune']:.4f} before and "
        f"{pruned['accuracy']:.4f} after {pruned['finetune_epochs']} fine-tuning epochs, "
        f"{_si(pruned['macs'])} MACs, {_si(pruned['params'])} params.",
        "",
        "| variant | accuracy | MACs | params | size | latency p50 (ms) | file |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for v in report["variants"]:
        latency = ", ".join(f"{t} thr {s['p50']:.3f}" for t, s in sorted(v["latency_ms"].items()))
        lines.append(f"| {v['name']} | {v['accuracy']:.4f} | {_si(v['macs'])} | "
                     f"{_si(v['params'])} | {v['size_bytes'] / 1024:.1f} KiB | "
                     f"{latency or '-'} | {v['tflite']} |")
    return "\n".join(lines) + "\n"


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
