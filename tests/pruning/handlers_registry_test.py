"""The handler registry's sparse-kernel declarations, which export's eligibility reads."""
import pytest
import tf_keras

from pipeline.errors import RegistryError
from pipeline.pruning import handlers
from pipeline.pruning.handlers import SparseKernel, base

L = tf_keras.layers


@pytest.mark.parametrize("layer,weight,block_1x4", [
    (L.Conv2D(4, 3), "kernel", False),
    (L.Conv2D(4, 3, groups=2), "kernel", False),  # in_axis holds one group's inputs
    (L.Conv1D(4, 3), "kernel", False),
    (L.SeparableConv2D(4, 3), "pointwise_kernel", False),
    (L.SeparableConv1D(4, 3), "pointwise_kernel", False),
    (L.Dense(4), "kernel", True),
])
def test_kernels_that_take_sparse_patterns(layer, weight, block_1x4):
    kernel = handlers.sparse_kernel(layer)
    assert (kernel.weight, kernel.in_axis) == (weight, -2)
    assert (kernel.two_of_four, kernel.block_1x4, kernel.reason) == (True, block_1x4, "")


@pytest.mark.parametrize("layer,weight,reason", [
    (L.DepthwiseConv2D(3), "depthwise_kernel", "one input channel per filter"),
    (L.DepthwiseConv1D(3), "depthwise_kernel", "one input channel per filter"),
    (L.Conv3D(4, 3), "kernel", "CONV_3D, whose filter keeps the output channels last"),
    (L.Conv2DTranspose(4, 3), "kernel", "input channels are the kernel's last axis"),
])
def test_kernels_that_declare_why_they_take_none(layer, weight, reason):
    kernel = handlers.sparse_kernel(layer)
    assert kernel.weight == weight
    assert not (kernel.two_of_four or kernel.block_1x4)
    assert reason in kernel.reason


@pytest.mark.parametrize("layer", [L.BatchNormalization(), L.ReLU(), L.Add()])
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
