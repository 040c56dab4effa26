"""Which layers the 2:4 and 1x4 block-FC patterns cover, from the model alone, and their file layout."""
import numpy as np
import pytest
import tf_keras

from pipeline.export import sparse_kernels
from pipeline.export.sparse_kernels import Ineligible, eligibility

L = tf_keras.layers


def built(layer, shape):
    layer.build((None,) + shape)
    return layer


def test_the_2of4_plan_of_a_mixed_image_model(mixed_models):
    found = sparse_kernels.plan(mixed_models["image"], "2of4")
    assert found.sparse == ("sep", "grouped", "fc", "predictions")
    assert found.ineligible == (
        Ineligible("stem", "1 input channel(s), not a multiple of 4"),
        Ineligible("dw", "depthwise conv: one input channel per filter, nothing to group along"),
        Ineligible("narrow_groups", "2 input channel(s) per group (groups=8), not a multiple "
                   "of 4", "prune with round_to=32", "round_to"))


def test_the_2of4_plan_of_a_sequence_model_covers_every_conv1d(mixed_models):
    found = sparse_kernels.plan(mixed_models["sequence"], "2of4")
    assert found.sparse == ("c1d", "sep1d", "c1d_grouped", "per_step", "predictions")
    assert found.ineligible == ()


def test_the_block_fc_plan_takes_hidden_dense_layers_only(mixed_models):
    found = sparse_kernels.plan(mixed_models["image"], "block_fc")
    assert found.sparse == ("fc",)
    assert dict((i.layer, i.reason) for i in found.ineligible)["predictions"] == (
        "the classifier (model output) is kept dense to protect accuracy")


@pytest.mark.parametrize("layer,shape,mode,reason", [
    (L.Conv2D(8, 3), (8, 8, 8), "2of4", None),
    (L.Conv2D(8, 3, groups=2), (8, 8, 16), "2of4", None),
    (L.Conv1D(8, 3), (8, 8), "2of4", None),
    (L.SeparableConv2D(8, 3), (8, 8, 8), "2of4", None),
    (L.SeparableConv2D(8, 3, depth_multiplier=2), (8, 8, 6), "2of4", None),  # 12 pointwise inputs
    (L.SeparableConv1D(8, 3), (8, 8), "2of4", None),
    (L.Dense(8), (8,), "2of4", None),
    (L.Dense(8), (8,), "block_fc", None),
    (L.Conv2D(8, 3), (8, 8, 8), "block_fc",
     "Conv2D: 1x4 block sparsity is for Dense (FULLY_CONNECTED) only"),
    (L.DepthwiseConv2D(3), (8, 8, 8), "2of4",
     "depthwise conv: one input channel per filter, nothing to group along"),
    (L.DepthwiseConv2D(3), (8, 8, 8), "block_fc",
     "depthwise conv: one input channel per filter, nothing to group along"),
    (L.Conv2D(8, 3, groups=8), (8, 8, 8), "2of4",
     "one input channel per group (groups=8), nothing to group along"),
    (L.Conv2DTranspose(8, 3), (8, 8, 8), "2of4",
     "transposed conv: its input channels are the kernel's last axis, and TF-MOT's 2:4 mask "
     "groups the second-to-last (its output channels)"),
    (L.Conv3D(8, 3), (4, 4, 4, 8), "2of4",
     "Conv3D becomes TFLite's CONV_3D, whose filter keeps the output channels last (DHWIO), "
     "so no 2:4 layout runs along its inputs"),
    (L.Conv2D(8, 3), (8, 8, 3), "2of4", "3 input channel(s), not a multiple of 4"),
])
def test_eligibility_follows_the_handler_registry(layer, shape, mode, reason):
    found = eligibility(built(layer, shape), mode)
    assert (found and found.reason) == reason
    if found:
        assert found.layer == layer.name and found.fix == "" and found.argument is None


def test_a_layer_without_a_handler_is_not_eligible():
    class MyDense(L.Dense):  # the registry is by exact class, as TF-MOT's is
        pass
    found = eligibility(built(MyDense(8), (8,)), "2of4")
    assert found.reason == ("MyDense: no 2:4 kernel is declared for this layer class "
                            "(pipeline.pruning.handlers.SparseKernel)")


def test_a_prunable_channel_count_names_round_to_as_the_fix():
    found = eligibility(built(L.Dense(8, name="fc"), (6,)), "2of4")
    assert found == Ineligible("fc", "6 input channel(s), not a multiple of 4",
                               "prune with round_to=4", "round_to")


def test_block_fc_keeps_the_classifier_dense():
    dense = built(L.Dense(8, name="predictions"), (8,))
    assert eligibility(dense, "2of4", frozenset({"predictions"})) is None
    found = eligibility(dense, "block_fc", frozenset({"predictions"}))
    assert found.reason == "the classifier (model output) is kept dense to protect accuracy"


@pytest.mark.parametrize("layer,shape,stored", [
    (L.Conv2D(16, 3), (8, 8, 8), (16, 3, 3, 8)),  # OHWI
    (L.Conv2D(16, 3, groups=2), (8, 8, 16), (16, 3, 3, 8)),  # I: one group's inputs
    (L.SeparableConv2D(16, 3), (8, 8, 8), (16, 1, 1, 8)),  # the pointwise kernel
    (L.Conv1D(16, 3), (8, 8), (16, 3, 8)),  # the file's (O, 1, k, I), same element order
    (L.Dense(16), (8,), (16, 8)),  # (out, in)
])
def test_file_layout_puts_outputs_first_and_inputs_last(layer, shape, stored):
    layer = built(layer, shape)
    values = sparse_kernels.file_layout(layer)
    assert values.shape == stored
    keras = sparse_kernels.kernel_variable(layer).numpy()
    np.testing.assert_array_equal(values[1, ..., 2], keras[..., 2, 1])  # output 1, input 2
