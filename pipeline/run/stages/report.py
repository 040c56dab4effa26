"""The report stage: ``report.json``, ``report.md`` and the PNG plots they link."""
from __future__ import annotations

from pipeline.run import plots
from pipeline.run import report as reporting
from pipeline.run.results import Evaluation, ExportResult, ModelResult, Pruning
from pipeline.run.store import Store

ONE_PROCESS = {"strategy": "none", "num_workers": 1, "replicas": 1}


def write_report(config: dict, base: ModelResult, pruning: Pruning,
                 exported: list[ExportResult], evaluations: dict[str, Evaluation],
                 store: Store, *, sensitivity: dict | None = None,
                 distribution: dict | None = None) -> dict:
    """Writes ``report.json``, ``report.md`` and the plots; returns the report.

    Args:
      config: the run's whole config as a dict (``report.json`` records it).
      base: the baseline stage's output.
      pruning: the prune-and-fine-tune stage's output.
      exported: the export stage's output.
      evaluations: the evaluate stage's output.
      store: the workdir.
      sensitivity: the sensitivity stage's curves, or None when it did not run.
      distribution: the training strategy's record (``{"strategy", "num_workers",
        "replicas"}``, see :meth:`pipeline.training.distribute.Cluster.record`);
        None means one process.

    Returns:
      The body of ``report.json`` (keys: :mod:`pipeline.run.report`).
    """
    body = reporting.build(config, base, pruning, exported, evaluations, store.workdir)
    body["distribute"] = distribution or dict(ONE_PROCESS)
    if sensitivity is not None:
        body["sensitivity"] = "sensitivity.json"
    body["plots"] = plots.write_all(body, pruning.plan.layers, sensitivity, store.workdir)
    store.write_json("report.json", body)
    store.write_text("report.md", reporting.markdown(body))
    print(f"[report] {store.path('report.json')}\n{reporting.markdown(body)}")
    return body
