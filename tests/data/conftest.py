"""A small Fashion-MNIST folder shared by the loader and pipeline tests."""
import numpy as np
import pytest

from bad_inputs import write_idx
from pipeline.data import loaders


@pytest.fixture
def fashion_dir(tmp_path):
    """A Fashion-MNIST folder of 120 training and 40 test images; test image i has value i."""
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (120, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    x_test[:, 0, 0] = np.arange(40)  # marks the file order
    arrays = {"x_train": x_train, "y_train": np.arange(120, dtype=np.uint8) % 10,
              "x_test": x_test, "y_test": np.arange(40, dtype=np.uint8) % 10}
    for key, name in loaders.FASHION_MNIST_FILES.items():
        write_idx(tmp_path / name, arrays[key])
    return tmp_path
