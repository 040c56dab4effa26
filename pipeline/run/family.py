"""A family of models from one run: ``prune.ratio`` as a tuple, one pruned model per ratio.

  python -m pipeline.main --config=configs/default.py --workdir=/tmp/family \
      --config.prune.ratio='(0.3, 0.5, 0.7)'

The baseline, the sensitivity scan and the baseline's export variants are
made once, in the workdir as in a run of one ratio. Each ratio then prunes,
fine-tunes, exports its ``pruned`` variants and writes its own report in
its sub-folder (:func:`pipeline.run.family_report.folder`)::

  baseline.keras, sensitivity.json, tflite/baseline_fp32.tflite   shared
  latency_tables/                 shared by every ratio (a latency target's host tables)
  ratio_0.50/plan.json, pruned_initial.keras, pruned.keras, tflite/<variant>.tflite,
  ratio_0.50/report.json, report.md, plots/   that ratio's run, as a single run writes it
  report.json, report.md, plots/family_tradeoff.png   the family (family_report's keys)

Each artifact is stamped as in a single run, so a rerun of the same command
skips everything done and a ratio added to the tuple reuses the others. A
ratio that fails (an unreachable target, a refused plan) is recorded with
its reason, the others still finish, and the run exits with
:data:`pipeline.run.report.VARIANT_FAILED`, as when a variant fails. A
single float is not a family: :mod:`pipeline.main` runs it as before.

Example:
  >>> from configs import default
  >>> config = default.get_config("quick")
  >>> config.prune.ratio = (0.3, 0.5)
  >>> ratios(config.prune)
  (0.3, 0.5)
"""
from __future__ import annotations

import copy
import dataclasses
import os

from pipeline import keras_api
from pipeline.errors import PruningError, WorkdirError
from pipeline.export import variants as export_registry
from pipeline.run import config_errors, family_report, plots, stages, worker_store
from pipeline.run import report as reporting
from pipeline.run import signals as guard
from pipeline.run.results import ExportResult, ModelResult, summary
from pipeline.run.stages.data import Data
from pipeline.run.stages.report import ONE_PROCESS
from pipeline.run.store import MemberStore, Store
from pipeline.training import traps
from pipeline.training.distribute import Cluster

# Top-level names every member reads and writes in the run's workdir.
SHARED = ("latency_tables",)


def ratios(prune_section) -> tuple[float, ...] | None:
    """``prune.ratio`` as a tuple of floats when it is a tuple or list, else None (one ratio)."""
    value = prune_section.ratio
    if isinstance(value, (tuple, list)):
        return tuple(float(r) for r in value)
    return None


def for_ratio(config, ratio: float):
    """A copy of ``config`` whose ``prune.ratio`` is ``ratio`` (the config itself is unchanged)."""
    member = copy.deepcopy(config)
    with member.unlocked():
        member.prune.ratio = float(ratio)
    return member


def checked(config):
    """The config the preflight checks: with a tuple, the one of its smallest ratio.

    A larger ratio that cannot be reached fails alone, in its own prune stage.
    """
    family = ratios(config.prune)
    return config if family is None else for_ratio(config, min(family))


def run(config, base: ModelResult, data: Data, store: Store, *, curves: dict | None,
        cluster: Cluster, model_name: str) -> dict:
    """Prunes, fine-tunes, exports and reports each ratio of ``prune.ratio``; the family report.

    Args:
      config: the whole config, ``prune.ratio`` a tuple.
      base: the baseline stage's output.
      data: the data stage's output.
      store: the run's workdir.
      curves: the sensitivity stage's curves (None when it did not run).
      cluster: what training runs under.
      model_name: the TFLite metadata's model name (:func:`pipeline.main.model_name`).

    Returns:
      The top-level ``report.json`` body (``family``: :mod:`pipeline.run.family_report`),
      or a non-chief worker's ``{"distribute", "chief": False}``.
    """
    family = ratios(config.prune)
    # The stage reads the model's heads from sources["pruned"]: the baseline has the same.
    shared = _export(config, {"baseline": base, "pruned": base}, "baseline", data, store,
                     model_name, cluster)
    # Timed once here; each ratio's report lists them from its folder.
    evaluations = stages.evaluate(config.evaluate, shared, data, store) if cluster.is_chief else {}
    members = []
    for ratio in family:
        member = MemberStore(store, family_report.folder(ratio), shared=SHARED)
        print(f"[family] ratio {ratio:g} in {member.folder}/")
        members.append(_member(for_ratio(config, ratio), base, shared, evaluations, data,
                               member, model_name=model_name, cluster=cluster))
    if not cluster.is_chief:
        worker_store.finish(cluster, store)
        return {"distribute": cluster.record(), "chief": False}
    return _write(config, base, shared, evaluations, members, store, curves, cluster)


def _member(config, base: ModelResult, shared: list[ExportResult], shared_evaluations: dict,
            data: Data, store: MemberStore, *, model_name: str,
            cluster: Cluster) -> family_report.Member:
    """One ratio's prune, fine-tune, export, evaluation and report, in its sub-folder.

    Its report lists the shared baseline variants too (named from its folder);
    the sensitivity scan is the family's, plotted in the top-level report.
    """
    seed, output = config.seed, config.model.output
    try:
        pruning = stages.prune_and_finetune(
            config.prune, config.finetune, base, data, store, seed=seed,
            deterministic=config.deterministic, cluster=cluster, output=output)
        exported = _export(config, {"baseline": base, "pruned": pruning.tuned}, "pruned", data,
                           store, model_name, cluster)
    except PruningError as error:
        if (isinstance(error, (WorkdirError, traps.OneDnnTrapError))
                or guard.is_disk_full(error)):
            raise  # the run's problem, not the ratio's
        reason = " ".join(config_errors.spelled(error).split())
        print(f"[family] ratio {config.prune.ratio:g} failed: {reason}")
        for stale in ("report.json", "report.md"):  # an earlier run's passes for none of this
            if os.path.isfile(store.path(stale)):
                os.remove(store.path(stale))
        return family_report.Member(config.prune.ratio, store.folder, None, reason)
    if not cluster.is_chief:
        return family_report.Member(config.prune.ratio, store.folder, None, "")
    evaluations = {**shared_evaluations, **stages.evaluate(config.evaluate, exported, data, store)}
    body = stages.write_report(config.to_dict(), _seen_from(base, store.folder), pruning,
                               [_item_seen_from(i, store.folder) for i in shared] + exported,
                               evaluations, store, distribution=cluster.record())
    return family_report.Member(config.prune.ratio, store.folder, body)


def _export(config, sources: dict, source: str, data: Data, store: Store, model_name: str,
            cluster: Cluster) -> list[ExportResult]:
    """The export stage on the variants of ``export.variants`` that convert ``source``."""
    section = copy.deepcopy(config.export)
    with section.unlocked():
        section.variants = tuple(n for n in config.export.variants
                                 if export_registry.get_variant(n).source == source)
    return stages.export_variants(section, sources, data, store, model_name=model_name,
                                  data_name=config.data.name, seed=config.seed,
                                  cluster=cluster, output=config.model.output)


def _seen_from(base: ModelResult, folder: str) -> ModelResult:
    """The baseline as a member's report names it: relative to the member's folder."""
    return dataclasses.replace(base, path=_up(base.path, folder))


def _item_seen_from(item: ExportResult, folder: str) -> ExportResult:
    """A shared (baseline) variant, its file and Keras model relative to ``folder``."""
    record = item.record
    if record is not None:
        record = dataclasses.replace(record, keras=_up(record.keras, folder))
    return dataclasses.replace(item, path=_up(item.path, folder), record=record)


def _up(path: str, folder: str) -> str:
    return path if os.path.isabs(path) else os.path.relpath(path, folder)


def _write(config, base: ModelResult, shared: list[ExportResult], evaluations: dict,
           members: list[family_report.Member], store: Store, curves: dict | None,
           cluster: Cluster) -> dict:
    """The family's ``report.json``, ``report.md`` and plots in the top-level workdir."""
    variants = [reporting.variant(item, evaluations.get(item.name), store.workdir)
                for item in shared]
    body = {"config": config.to_dict(),
            "baseline": {"keras": base.path, "framework": keras_api.describe(base.model),
                         **summary(base.record)},
            "variants": variants,
            "family": family_report.summarise(ratios(config.prune), variants, members,
                                              base_macs=base.record.macs,
                                              threads=tuple(config.evaluate.latency_threads)),
            "distribute": cluster.record() or dict(ONE_PROCESS)}
    made = {}
    target = os.path.join(plots.DIRECTORY, "family_tradeoff.png")
    made_family = body["family"]
    if plots.family_tradeoff(made_family["points"], made_family["cost"], store.path(target),
                             threads=made_family["threads"]):
        made["family_tradeoff"] = target
    if curves is not None:
        body["sensitivity"] = "sensitivity.json"
        if curves.get("groups"):
            made["sensitivity"] = os.path.join(plots.DIRECTORY, "sensitivity.png")
            plots.sensitivity_curves(curves, store.path(made["sensitivity"]))
    body["plots"] = made
    store.write_json("report.json", body)
    store.write_text("report.md", family_report.markdown(body))
    print(f"[report] {store.path('report.json')}\n{family_report.markdown(body)}")
    return body
