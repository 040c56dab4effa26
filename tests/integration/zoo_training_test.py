"""Model zoo training: one optimiser step of each family's representative, pruned, finishes.

Pruning narrows layers into shapes no one trained before (8-channel strided
1x1 convolutions, odd widths), and TF 2.21 has crashed in such a backward
pass (see tests/training/onednn_test.py). Each representative of
``tests/integration/zoo_test.py`` is pruned by 40% of its MACs and trained
for one step of batch 2 at its smallest input; the loss must be finite and
the weights must move. The step runs eagerly (the same kernels, no graph to trace: tracing
the training graph of each family took most of the time). Marked slow.
"""
import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tf_keras
from zoo_test import REPRESENTATIVES, _build, _free_memory  # noqa: F401  (fixture)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REPRESENTATIVES))
def test_pruned_representative_trains_one_step(name):
    pruned = pipeline.prune(_build(tf_keras, name), 0.4, target="macs").model
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2,) + tuple(pruned.input_shape[1:])).astype(np.float32)
    y = rng.integers(0, 10, 2)
    pruned.compile(tf_keras.optimizers.SGD(1e-3),
                   tf_keras.losses.SparseCategoricalCrossentropy(), run_eagerly=True)
    before = [w.copy() for w in pruned.get_weights()]
    loss = pruned.train_on_batch(x, y)
    assert np.isfinite(loss), f"{name}: loss {loss}"
    moved = sum(not np.array_equal(a, b) for a, b in zip(before, pruned.get_weights()))
    assert moved > 0, f"{name}: no weight changed after one step"
