"""The pipeline's stages, each taking what it needs and returning what it made.

data -> baseline -> sensitivity -> (prune -> finetune) x iterations -> export -> evaluate
-> report.

One module a stage; each takes the config section it reads plus explicit
values (the seed, the data's key, the cluster) and returns a typed result
(:mod:`pipeline.run.results`). Every stage that writes an artifact hashes
what the artifact depends on (the config sections it reads and the hashes
of its inputs) and skips itself when the artifact exists with a matching
stamp (:meth:`pipeline.run.store.Store.cached`). Workdir layout::

  config.json                   the config of the last run
  baseline.keras                trained or loaded baseline (+ .stamp.json)
  sensitivity.json              validation accuracy per group and ratio removed
  plan.json, pruned_initial.keras   the pruning plan and the pruned model before fine-tuning
  pruned.keras                  the fine-tuned pruned model
  steps/plan_<i>.json, steps/pruned_initial_<i>.keras, steps/pruned_<i>.keras
                                each step of an iterative pruning (finetune.iterations > 1)
  tflite/<variant>.tflite       one file per export variant (RGB input, metadata, verified),
                                plus <variant>.eval.json; tflite/labels.txt; the sparse
                                variants' fine-tuned Keras models as tflite/<variant>.keras
  baseline/, finetune[_<i>]/    checkpoints (while training), history.csv and TensorBoard
                                logs (``tensorboard --logdir <workdir>``)
  latency_tables/               host latency tables of a ``prune.target=latency`` run
  plots/*.png                   accuracy vs MACs and latency, channels per layer, sensitivity
  report.json, report.md

With ``prune.ratio`` a tuple (:mod:`pipeline.run.family`), the baseline, the
scan and the baseline's variants stay at the top; each ratio's plan, models,
``tflite/``, plots and report go to ``ratio_<r>/``; the top-level
``report.json``/``report.md`` summarise the family.

Example:
  >>> data = stages.load_data(config.data, input_size=28, channels=1, batch_size=128, seed=0)
  >>> base = stages.baseline(config.model, config.train, data, store, seed=0)
"""
from pipeline.run.stages.baseline import baseline
from pipeline.run.stages.data import Data, load_data
from pipeline.run.stages.evaluate import evaluate
from pipeline.run.stages.export import export_variants
from pipeline.run.stages.prune import prune, prune_and_finetune
from pipeline.run.stages.finetune import finetune
from pipeline.run.stages.report import write_report
from pipeline.run.stages.sensitivity import sensitivity

__all__ = ["Data", "load_data", "baseline", "sensitivity", "prune_and_finetune", "prune",
           "finetune", "export_variants", "evaluate", "write_report"]
