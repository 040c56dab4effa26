"""The one place that selects Keras 2 (tf_keras) before TensorFlow is imported.

tensorflow-model-optimization 0.8 only works with tf_keras, and TF 2.21 picks
Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set before its first import. Every
entry point and test imports :mod:`pipeline` first, which imports this module.
"""
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ INFO lines drown the pipeline's own progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if "tensorflow" in sys.modules:  # pragma: no cover - depends on import order
    import tensorflow as _tf

    if not _tf.keras.__name__.startswith("tf_keras"):
        raise ImportError(
            "tensorflow was imported before pipeline with Keras 3 active; "
            "import pipeline first or set TF_USE_LEGACY_KERAS=1 in the environment")
