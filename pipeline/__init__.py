"""Structured filter pruning for tf_keras models, rebuilt as narrower dense graphs.

Importing this package selects Keras 2 (``TF_USE_LEGACY_KERAS=1``) before
TensorFlow loads; import it before tensorflow. It loads the pruning library
only: LiteRT, TF-MOT, ml_collections and matplotlib load with the parts that
use them (export, timing, the run layer).

Example:
  >>> import pipeline, tf_keras
  >>> model = tf_keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
  >>> config = pipeline.PruneConfig(ratio=0.5, target="macs", criterion="l1", scope="global")
  >>> result = pipeline.prune(model, config)
  >>> print(result.plan.summary_table())
"""
from pipeline import _env  # noqa: F401  (must run before TensorFlow is imported)
from pipeline.api import PruneResult, apply_plan, plan_pruning, prune
from pipeline.config import PruneConfig
from pipeline.errors import (PlanError, PruningError, RegistryError, TargetError,
                             UnsupportedLayerError, UnsupportedModelError)
from pipeline.latency.config import LatencyConfig
from pipeline.pruning import handlers
from pipeline.pruning.channels import analyse
from pipeline.pruning.counting import count_macs, count_params
from pipeline.pruning.criteria import criterion_names, register_criterion
from pipeline.pruning.handlers import register_handler
from pipeline.pruning.plan import PrunePlan
from pipeline.pruning.targets import names as target_names

__all__ = [
    "prune", "plan_pruning", "apply_plan", "PruneConfig", "PruneResult", "PrunePlan", "analyse",
    "count_macs", "count_params", "register_handler", "register_criterion", "criterion_names",
    "target_names", "handlers", "PruningError", "UnsupportedModelError", "UnsupportedLayerError",
    "PlanError", "TargetError", "RegistryError", "LatencyConfig",
]
