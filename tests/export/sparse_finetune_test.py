"""The 2:4 and 1x4 block-FC fine-tunes, and which layers the handler registry makes eligible."""
import contextlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from pipeline.export import sparse_finetune
from pipeline.export.sparse_finetune import Ineligible, eligibility
from pipeline.training import distribute

L = tf_keras.layers
RECIPE = sparse_finetune.SparseRecipe(epochs=1, steps=4)


def built(layer, shape):
    layer.build((None,) + shape)
    return layer


def test_2of4_leaves_the_source_model_unchanged(tiny_classifier, two_of_four):
    before = tiny_classifier.get_layer("block2_conv1").kernel.numpy()
    assert np.mean(before == 0) < 0.01  # the source is still dense
    after = two_of_four.model.get_layer("block2_conv1").kernel.numpy()
    assert np.mean(after == 0) >= 0.5


def test_2of4_eligibility_names_the_reasons(two_of_four):
    assert two_of_four.skipped == {"block1_conv1": "1 input channel(s), not a multiple of 4"}
    # The image's channel count is not the pruner's to round: no fix is offered.
    assert two_of_four.ineligible == (
        Ineligible("block1_conv1", "1 input channel(s), not a multiple of 4"),)
    assert set(two_of_four.pruned) == {"block1_conv2", "block2_conv1", "block2_conv2",
                                       "block3_conv1", "block3_conv2", "fc", "predictions"}


def test_block_fc_prunes_the_hidden_dense_layer_only(block_fc):
    assert block_fc.pruned == ("fc",)
    assert "kept dense" in block_fc.skipped["predictions"]
    assert "Dense (FULLY_CONNECTED) only" in block_fc.skipped["block1_conv1"]


@pytest.mark.parametrize("layer,shape,mode,reason", [
    (L.Conv2D(8, 3), (8, 8, 8), "2of4", None),
    (L.Dense(8), (8,), "2of4", None),
    (L.Dense(8), (8,), "block_fc", None),
    (L.Conv2D(8, 3), (8, 8, 8), "block_fc",
     "Conv2D: 1x4 block sparsity is for Dense (FULLY_CONNECTED) only"),
    (L.DepthwiseConv2D(3), (8, 8, 8), "2of4",
     "depthwise conv: one input channel per filter, nothing to group along"),
    (L.DepthwiseConv2D(3), (8, 8, 8), "block_fc",
     "depthwise conv: one input channel per filter, nothing to group along"),
    (L.SeparableConv2D(8, 3), (8, 8, 8), "2of4",
     "SeparableConv2D: TF-MOT's 2:4 mask supports Conv2D and Dense only"),
    (L.Conv2DTranspose(8, 3), (8, 8, 8), "2of4",
     "Conv2DTranspose: TF-MOT's 2:4 mask supports Conv2D and Dense only"),
    (L.Conv1D(8, 3), (8, 8), "2of4", "Conv1D: TF-MOT's 2:4 mask supports Conv2D and Dense only"),
    (L.Conv2D(8, 3, groups=2), (8, 8, 8), "2of4", "grouped conv (groups=2)"),
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
    assert found.reason == "MyDense: TF-MOT's 2:4 mask supports Conv2D and Dense only"


def test_a_prunable_channel_count_names_round_to_as_the_fix():
    found = eligibility(built(L.Dense(8, name="fc"), (6,)), "2of4")
    assert found == Ineligible("fc", "6 input channel(s), not a multiple of 4",
                               "prune with round_to=4", "round_to")


def test_block_fc_keeps_the_classifier_dense():
    dense = built(L.Dense(8, name="predictions"), (8,))
    assert eligibility(dense, "2of4", frozenset({"predictions"})) is None
    found = eligibility(dense, "block_fc", frozenset({"predictions"}))
    assert found.reason == "the classifier (model output) is kept dense to protect accuracy"


def test_no_eligible_layer_returns_an_unchanged_copy():
    inputs = tf_keras.Input((6,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(3, name="out")(inputs))
    tuned = sparse_finetune.finetune_sparse(model, "2of4", RECIPE, None, 1)
    assert tuned.pruned == () and "6 input channel" in tuned.skipped["out"]
    assert tuned.model is not model
    np.testing.assert_array_equal(tuned.model.get_weights()[0], model.get_weights()[0])


class RecordingCluster(distribute.Cluster):
    """A one-process cluster that records the calls the fine-tune makes."""

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "calls", [])

    def clone(self, model):
        self.calls.append("clone")
        copy = tf_keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return copy

    def scope(self):
        self.calls.append("scope")
        return contextlib.nullcontext()


def test_the_fine_tune_runs_under_the_cluster_it_is_given():
    inputs = tf_keras.Input((8,))
    x = tf_keras.layers.Dense(8, name="fc")(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(10, name="out")(x))
    train = tf.data.Dataset.from_tensor_slices(
        (np.random.rand(64, 8).astype(np.float32), np.random.randint(0, 10, 64))).batch(16)
    cluster = RecordingCluster()
    tuned = sparse_finetune.finetune_sparse(model, "2of4", RECIPE, train.repeat(), 1,
                                            cluster=cluster)
    assert cluster.calls == ["clone", "scope"]
    assert tuned.pruned == ("fc", "out")


def test_bad_recipe_and_mode():
    with pytest.raises(sparse_finetune.SparsityError, match="epochs >= 1"):
        sparse_finetune.SparseRecipe(epochs=0)
    with pytest.raises(sparse_finetune.SparsityError, match="mode must be one of") as error:
        sparse_finetune.finetune_sparse(None, "3of8", RECIPE, None, 1)
    assert error.value.argument == "mode"
