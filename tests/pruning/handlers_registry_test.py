"""The handler registry's sparse-kernel declarations, which export's eligibility reads."""
import pytest
import tf_keras

from pipeline.errors import RegistryError
from pipeline.pruning import handlers
from pipeline.pruning.handlers import SparseKernel, base

L = tf_keras.layers


@pytest.mark.parametrize("layer,two_of_four,block_1x4", [
    (L.Conv2D(4, 3), True, False),
    (L.Dense(4), True, True),
])
def test_kernels_that_take_sparse_patterns(layer, two_of_four, block_1x4):
    kernel = handlers.sparse_kernel(layer)
    assert (kernel.weight, kernel.in_axis) == ("kernel", -2)
    assert (kernel.two_of_four, kernel.block_1x4, kernel.reason) == (two_of_four, block_1x4, "")


def test_depthwise_declares_why_it_takes_none():
    kernel = handlers.sparse_kernel(L.DepthwiseConv2D(3))
    assert kernel.weight == "depthwise_kernel"
    assert not (kernel.two_of_four or kernel.block_1x4)
    assert "one input channel per filter" in kernel.reason


@pytest.mark.parametrize("layer", [L.Conv1D(4, 3), L.Conv2DTranspose(4, 3),
                                   L.SeparableConv2D(4, 3), L.BatchNormalization(), L.ReLU()])
def test_other_layers_declare_no_sparse_kernel(layer):
    assert handlers.sparse_kernel(layer) is None


def test_lookup_is_by_exact_class():
    class MyDense(L.Dense):
        pass
    assert handlers.sparse_kernel(MyDense(4)) is None


def test_a_registered_custom_layer_can_declare_its_kernel(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # undone after the test

    class MyFC(L.Layer):
        pass
    declared = SparseKernel("w", in_axis=0, two_of_four=True, block_1x4=True)
    handlers.register_handler(MyFC, handlers.passthrough(), replace=True)
    assert handlers.sparse_kernel(MyFC()) is None
    handler = handlers.Handler(sparse=declared)
    handlers.register_handler(MyFC, handler, replace=True)
    assert handlers.sparse_kernel(MyFC()) is declared
    with pytest.raises(RegistryError, match="already has a handler"):
        handlers.register_handler(MyFC, handler)
