"""The fine-tune stage: trains a pruned model (optionally distilling from the baseline),
then re-estimates its BatchNorm statistics on training batches
(``finetune.bn_recalibrate_batches``, done by :func:`pipeline.training.fit.fit`)."""
from __future__ import annotations

import time


from pipeline import keras_api
from pipeline.fingerprint import fingerprint
from pipeline.run.results import ModelRecord, ModelResult, PrunedModel
from pipeline.run.stages.data import Data
from pipeline.run.stages.measure import measure
from pipeline.run.store import Store
from pipeline.training import fit as train
from pipeline.training.distribute import Cluster


def finetune(section, pruned: PrunedModel, base: ModelResult, data: Data, store: Store, *,
             seed: int, deterministic: bool = False, cluster: Cluster | None = None,
             step: tuple[int, int] = (1, 1), output: str = "") -> ModelResult:
    """Fine-tunes ``pruned`` per ``config.finetune``; saves ``pruned.keras``.

    Args:
      section: ``config.finetune`` (a :class:`pipeline.training.fit.Recipe` plus
        ``distill``, ``temperature``, ``alpha`` and ``bn_recalibrate_batches``).
      pruned: the prune stage's output (trained in place).
      base: the baseline, the teacher when ``finetune.distill`` is set.
      data: the data stage's output.
      store: the workdir.
      seed: step ``i`` seeds training with ``seed + i``.
      deterministic: ``config.deterministic`` (part of the key).
      cluster: what training runs under (None: this process alone).
      step: ``(i, k)``: step ``i`` of ``k`` writes ``steps/pruned_<i>.keras`` when ``k > 1``.
      output: ``model.output``, a multi-head model's classifier ('' = automatic).

    Returns:
      The fine-tuned model's :class:`ModelResult`.
    """
    i, k = step
    name = "pruned.keras" if k == 1 else f"steps/pruned_{i}.keras"
    tag = "[finetune]" if k == 1 else f"[finetune {i}/{k}]"
    f = section
    key = fingerprint("finetune", pruned.key, f, deterministic, *([output] if output else []))

    def compute():
        keras_api.set_random_seed(seed + i)
        start = time.time()
        print(f"{tag} {f.epochs} epochs" + (f", distilling at T={f.temperature}, "
                                            f"alpha={f.alpha}" if f.distill else ""))
        fitted = train.fit(pruned.model, data.datasets, train.Recipe.from_config(f),
                           store.scratch("finetune" if k == 1 else f"finetune_{i}", key),
                           cluster=cluster, teacher=_teacher(f, pruned.model, base.model),
                           temperature=f.temperature, alpha=f.alpha, output=output)
        if fitted.bn_batches:
            print(f"{tag} BatchNorm statistics re-estimated on {fitted.bn_batches} "
                  "training batches")
        record = ModelRecord(**measure(pruned.model, data.datasets, output), history=fitted.history,
                             epochs=fitted.epochs, seconds=time.time() - start,
                             bn_batches=fitted.bn_batches)
        return pruned.model, record

    made = store.cached(name, key, compute, ModelRecord, save=store.save_model,
                        load=store.load_model)
    if made.reused:
        print(f"{tag} up to date: {name} (test accuracy {made.record.accuracy:.4f})")
    else:
        print(f"{tag} test accuracy {made.record.accuracy:.4f} ({made.record.seconds:.0f} s)")
    return ModelResult(made.value, name, key, made.record)


def _teacher(section, model, original):
    """The baseline when distilling, or always for a multi-head model: its heads other
    than the classifier are held to the unpruned model's (:mod:`pipeline.training.heads`)."""
    return original if section.distill or len(model.outputs) > 1 else None
