"""Structured filter pruning for Keras 3 and tf_keras models, rebuilt as narrower dense graphs.

A Keras 3 model (``import keras``) comes back a Keras 3 model, a tf_keras one
a tf_keras one. Importing this package makes ``tf.keras`` mean tf_keras
(``TF_USE_LEGACY_KERAS=1``) before TensorFlow loads, which TF-MOT needs; it
does not change ``import keras``. It loads the pruning library
only: LiteRT, TF-MOT, ml_collections and matplotlib load with the parts that
use them (export, timing, the run layer).

Example:
  >>> import pipeline, keras
  >>> model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
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
