"""The sensitivity stage: the baseline's per-group scan, written to ``sensitivity.json``."""
from __future__ import annotations

from pipeline.fingerprint import fingerprint
from pipeline.pruning import sensitivity as sensitivity_scan
from pipeline.run.results import ModelResult, ScanRecord
from pipeline.run.stages.data import Data
from pipeline.run.store import Store
from pipeline.training import heads

NAME = "sensitivity.json"


def sensitivity(section, prune_section, base: ModelResult, data: Data, store: Store, *,
                seed: int, output: str = "") -> dict | None:
    """Validation accuracy with each group narrowed alone, no fine-tuning.

    Args:
      section: ``config.sensitivity`` (``enabled``, ``ratios``, ``max_batches``).
      prune_section: ``config.prune``; the scan uses its ``criterion``,
        ``ignore`` and ``min_filters``.
      base: the baseline stage's output.
      data: the data stage's output (the scan reads the validation split).
      store: the workdir.
      seed: for the ``random`` criterion.
      output: ``model.output``: a multi-head model is scanned through this classifier
        output ('' = automatic, see :mod:`pipeline.training.heads`).

    Returns:
      The curves as a dict (see :class:`pipeline.pruning.sensitivity.Curves`), or None
      when ``sensitivity.enabled`` is False or there is no validation split.
    """
    s, p = section, prune_section
    if not s.enabled:
        return None
    if not data.datasets.sizes.get("val", 0):
        print("[sensitivity] skipped: no validation split (config.data.val_split=0)")
        return None
    key = fingerprint("sensitivity", base.key, data.key, s, p.criterion, p.ignore,
                      p.min_filters, seed, *([output] if output else []))

    def compute():
        print(f"[sensitivity] {p.criterion}: validation accuracy with each group narrowed by "
              f"{', '.join(f'{r:.0%}' for r in s.ratios)}, no fine-tuning")
        # A multi-head model is scanned through its classifier head, whose accuracy it reads.
        model = heads.classifier_view(base.model, heads.classifier_output(
            base.model, data.datasets.num_classes, output, where=base.path))
        curves = sensitivity_scan.scan(
            model, data.datasets.val, tuple(s.ratios), criterion=p.criterion,
            ignore=tuple(p.ignore), min_filters=p.min_filters, max_batches=s.max_batches,
            data=data.datasets.train, seed=seed,
            progress=lambda line: print(f"[sensitivity] {line}", flush=True))
        return curves.to_dict(), ScanRecord(curves.seconds, curves.baseline_accuracy)

    made = store.cached(NAME, key, compute, ScanRecord, save=store.write_json,
                        load=store.read_json)
    body = made.value
    if made.reused:
        print(f"[sensitivity] up to date: {NAME} ({len(body['groups'])} groups)")
    else:
        worst = min(body["groups"], key=lambda g: body["groups"][g][-1]["accuracy"])
        print(f"[sensitivity] {NAME}: {body['examples']} validation images, most sensitive "
              f"group {worst} ({body['seconds']:.0f} s)")
    return body

