"""Structured filter pruning for tf_keras models, rebuilt as narrower dense graphs.

Importing this package selects Keras 2 (``TF_USE_LEGACY_KERAS=1``) before
TensorFlow loads; import it before tensorflow.

Example:
  >>> import pipeline, tf_keras
  >>> model = tf_keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
  >>> result = pipeline.prune(model, 0.5, target="macs", criterion="l1", scope="global")
  >>> print(result.plan.summary_table())
"""
from pipeline import _env  # noqa: F401  (must run before TensorFlow is imported)
from pipeline.pruning import handlers
from pipeline.api import PruneResult, apply_plan, plan_pruning, prune
from pipeline.pruning.channels import analyse
from pipeline.pruning.counting import count_macs, count_params
from pipeline.pruning.criteria import criterion_names, register_criterion
from pipeline.errors import (PlanError, PruningError, RegistryError, TargetError,
                             UnsupportedLayerError, UnsupportedModelError)
from pipeline.pruning.handlers import register_handler
from pipeline.latency.table import LatencyConfig
from pipeline.pruning.plan import PrunePlan

__all__ = [
    "prune", "plan_pruning", "apply_plan", "PruneResult", "PrunePlan", "analyse",
    "count_macs", "count_params", "register_handler", "register_criterion", "criterion_names",
    "handlers", "PruningError", "UnsupportedModelError", "UnsupportedLayerError", "PlanError",
    "TargetError", "RegistryError", "LatencyConfig",
]
