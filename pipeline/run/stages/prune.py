"""The prune stage: prunes the baseline per ``config.prune``, in one or several steps.

Each step prunes (:func:`prune`) and fine-tunes
(:func:`pipeline.run.stages.finetune.finetune`); the library computes each
step's ratio and composes the steps' plans (:mod:`pipeline.pruning.compose`).
"""
from __future__ import annotations

import dataclasses
import time

from pipeline import api
from pipeline.fingerprint import fingerprint
from pipeline.pruning import compose
from pipeline.pruning.plan import PrunePlan
from pipeline.run import alignment, prune_settings
from pipeline.run import report as reporting
from pipeline.run.results import (ModelRecord, ModelResult, PrunedModel, PruneRecord, Pruning,
                                  Step)
from pipeline.run.stages.data import Data
from pipeline.run.stages.finetune import finetune
from pipeline.run.stages.measure import measure
from pipeline.run.store import Store
from pipeline.training import bn_stats, traps
from pipeline.training.distribute import Cluster

PLAN, FINAL = "plan.json", "pruned.keras"


def prune_and_finetune(prune_section, finetune_section, base: ModelResult, data: Data,
                       store: Store, *, seed: int, deterministic: bool = False,
                       cluster: Cluster | None = None, output: str = "") -> Pruning:
    """Prunes and fine-tunes in ``finetune.iterations`` steps.

    The schedule: with overall ratio ``R = prune.ratio`` of the target (MACs
    or filters) in ``k`` steps, step ``i`` prunes the previous step's
    fine-tuned model down to ``(1 - R) ** (i / k)`` of the baseline's amount,
    so every step removes about the same share ``1 - (1 - R) ** (1 / k)`` of
    what is left (50% of MACs in 2 steps: 29.3%, then 29.3% of the rest).
    Each step's ratio is computed from the model actually reached
    (:func:`pipeline.pruning.compose.step_ratio`), so a step that lands a
    little off its target (selection is within two points) is corrected by
    the next, and the last lands on ``R`` itself. Each step fine-tunes
    ``finetune.epochs`` epochs.

    With one step the artifacts are ``plan.json``, ``pruned_initial.keras``
    and ``pruned.keras``. With more, step ``i`` writes ``steps/plan_<i>.json``,
    ``steps/pruned_initial_<i>.keras`` and ``steps/pruned_<i>.keras`` (each
    stamped with a key that chains the previous step's), and then
    ``plan.json`` is the composed plan from the baseline to the final model
    (which layers lost which channels overall) and ``pruned.keras`` the final
    model.

    Args:
      prune_section: ``config.prune``.
      finetune_section: ``config.finetune``.
      base: the baseline stage's output.
      data: the data stage's output.
      store: the workdir.
      seed: the run's seed.
      deterministic: ``config.deterministic``.
      cluster: what the fine-tunes run under (None: this process alone).
      output: ``model.output``, a multi-head model's classifier ('' = automatic).

    Returns:
      The :class:`Pruning`: the last step's model before fine-tuning, the
      final fine-tuned model, the (composed) plan and, for several steps, each
      step's :class:`Step`.
    """
    p, k = prune_section, finetune_section.iterations
    current, steps, plans = base, [], []
    full = compose.amount(base.model, p.target, p.ignore) if k > 1 else 0.0
    for i in range(1, k + 1):
        ratio = compose.step_ratio(full, current.model, p.ratio, i, k, p.target, p.ignore)
        pruned = prune(p, current, data, store, seed=seed, ratio=ratio, step=(i, k),
                       bn_batches=finetune_section.bn_recalibrate_batches, output=output)
        current = finetune(finetune_section, pruned, base, data, store, seed=seed,
                           deterministic=deterministic, cluster=cluster, step=(i, k),
                           output=output)
        plans.append(pruned.plan)
        steps.append(Step(step=i, ratio=ratio, plan=pruned.record.plan, keras=current.path,
                          macs=current.record.macs,
                          accuracy_before_finetune=pruned.record.accuracy,
                          accuracy=current.record.accuracy, epochs=current.record.epochs or 0))
    if k == 1:
        return Pruning(pruned, current, pruned.plan, dict(pruned.record.removed))
    plan = compose.compose(base.model, plans, p.ratio, p.ignore)
    store.write_text(PLAN, plan.to_json())
    final = dataclasses.replace(current.record, epochs=sum(s.epochs for s in steps))
    store.cached(FINAL, fingerprint("final", current.key), lambda: (current.model, final),
                 ModelRecord, save=store.save_model)
    print(f"[prune] {k} steps, overall\n{plan.summary_table()}")
    tuned = ModelResult(current.model, FINAL, current.key, final)
    return Pruning(pruned, tuned, plan, dict(plan.removed), tuple(steps))


def prune(section, source: ModelResult, data: Data, store: Store, *, seed: int,
          ratio: float, step: tuple[int, int] = (1, 1), bn_batches: int = 0,
          output: str = "") -> PrunedModel:
    """Prunes ``source`` per ``config.prune`` by ``ratio``; writes the model and its plan.

    Args:
      section: ``config.prune`` (its ``ratio`` is replaced by ``ratio``).
      source: the model to prune (the baseline, or the previous step's).
      data: the data stage's output (criteria that need data read its training split).
      store: the workdir; a latency target caches its host tables in ``latency_tables/``.
      seed: the run's seed.
      ratio: the fraction of ``prune.target`` this step removes from ``source``.
      step: ``(i, k)``: step ``i`` of ``k`` (see :func:`prune_and_finetune` for the names).
      bn_batches: ``finetune.bn_recalibrate_batches``: re-estimate the pruned model's
        BatchNorm statistics on this many training batches before measuring it (0: no).
      output: ``model.output``, the classifier head measured ('' = automatic).

    Returns:
      The :class:`PrunedModel`, before fine-tuning.

    The alignment is ``prune.round_to`` or, when that cannot reach the
    target, the coarsest finer step that does (:mod:`pipeline.run.alignment`);
    the record's ``round_to`` holds both.

    Raises:
      TargetError: the target is unreachable (checked up front for MACs and filters).
    """
    i, k = step
    name, plan_name = ("pruned_initial.keras", PLAN) if k == 1 else (
        f"steps/pruned_initial_{i}.keras", f"steps/plan_{i}.json")
    tag = "[prune]" if k == 1 else f"[prune {i}/{k}]"
    # model.output only when set, so that single-head runs keep their keys.
    key = fingerprint("prune", source.key, section, seed, step, ratio, bn_batches,
                      *([output] if output else []))
    config = prune_settings.prune_config(section, seed, store.path("latency_tables"),
                                         ratio=ratio)

    def compute():
        start = time.time()
        if config.criterion == "taylor":  # it back-propagates through the model
            traps.check(source.model, "the model scored by taylor")
        # The coarsest alignment, from prune.round_to down, that reaches the target.
        result, used = alignment.reach(
            lambda step: api.prune(source.model, config, data=data.datasets.train,
                                   round_to=step), config.round_to, config.target)
        if used != config.round_to:
            print(f"{tag} round_to={config.round_to} cannot reach {ratio:.1%} of "
                  f"{config.target}; pruning at round_to={used}")
        if result.plan.alignment:
            print(f"{tag} round_to=auto: {result.plan.alignment['summary']} (step: groups)")
        print(f"{tag} {config.criterion}, {config.scope}, {ratio:.1%} of {config.target}\n"
              f"{result.plan.summary_table()}")
        if result.plan.report is not None:
            print(f"{tag} {reporting.latency_line(result.plan.report)}")
        # Pruning changes what each BatchNorm layer sees: re-estimate before measuring.
        done = bn_stats.reestimate(result.model, data.datasets.train, bn_batches)
        if done.batches:
            print(f"{tag} BatchNorm statistics of {len(done.layers)} layers re-estimated on "
                  f"{done.batches} training batches ({done.seconds:.1f} s)")
        record = PruneRecord(**measure(result.model, data.datasets, output),
                             removed=dict(result.plan.removed), plan=plan_name,
                             seconds=time.time() - start, bn_batches=done.batches,
                             round_to=alignment.record(config.round_to, used,
                                                       result.plan.alignment))
        return result, record

    def save(name: str, result: api.PruneResult) -> None:
        # The bigger write first: a full disk keeps the old plan.
        store.save_model(name, result.model)
        store.write_text(plan_name, result.plan.to_json())

    def load(name: str) -> api.PruneResult:
        with open(store.path(plan_name)) as f:
            plan = PrunePlan.from_json(f.read())
        return api.PruneResult(store.load_model(name), plan)

    made = store.cached(name, key, compute, PruneRecord, save=save, load=load,
                        needs=(plan_name,))
    plan = made.value.plan
    if made.reused:
        print(f"{tag} up to date: {plan_name}, {name}\n{plan.summary_table()}")
    else:
        print(f"{tag} test accuracy before fine-tuning {made.record.accuracy:.4f}")
    return PrunedModel(made.value.model, name, key, made.record, plan)
