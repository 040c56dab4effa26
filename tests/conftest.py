"""Test setup: import pipeline first so tf_keras (Keras 2) is selected before TensorFlow."""
import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow loads)
import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    tf.random.set_seed(0)
    yield
