"""The 2:4 and 1x4 block-FC fine-tunes: TF-MOT's masks, this module's own, and what they leave."""
import contextlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from pipeline.export import sparse_finetune, sparse_kernels
from pipeline.export.sparse_kernels import Ineligible
from pipeline.training import distribute

L = tf_keras.layers
RECIPE = sparse_finetune.SparseRecipe(epochs=1, steps=4)


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


def overfull(values, in_axis):
    """Groups of 4 along ``in_axis`` holding more than 2 non-zeros."""
    groups = np.moveaxis(values, in_axis, -1).reshape(-1, 4)
    return int(((groups != 0).sum(axis=1) > 2).sum())


def test_two_of_four_mask_keeps_the_two_largest_of_every_four_inputs():
    kernel = np.array([[1., -5.], [-3., 2.], [2., 0.5], [0.1, -4.]])  # Dense (in=4, out=2)
    mask = sparse_finetune.two_of_four_mask(kernel, in_axis=0)
    np.testing.assert_array_equal(mask, [[0, 1], [1, 0], [1, 0], [0, 1]])
    conv = np.random.default_rng(0).normal(size=(3, 8, 16))  # Conv1D (k, in, out)
    masked = conv * sparse_finetune.two_of_four_mask(conv, in_axis=-2)
    assert overfull(masked, -2) == 0 and np.mean(masked == 0) == 0.5


@pytest.mark.parametrize("layer,shape,by_tfmot", [
    (L.Conv2D(8, 3), (8, 8, 8), True),
    (L.Conv2D(8, 3, groups=2), (8, 8, 16), True),
    (L.SeparableConv2D(8, 3), (8, 8, 8), True),
    (L.Dense(8), (8,), True),
    (L.Conv1D(8, 3), (8, 8), False),  # rank 3: TF-MOT's mask rejects it
    (L.SeparableConv1D(8, 3), (8, 8), False),
])
def test_tfmot_masks_rank_2_and_4_kernels_only(layer, shape, by_tfmot):
    layer.build((None,) + shape)
    assert sparse_finetune.tfmot_masks(layer) == by_tfmot


@pytest.mark.parametrize("name", ["image", "sequence"])
def test_every_planned_kernel_is_2of4_along_its_inputs(name, mixed_models, mixed_2of4):
    tuned, source = mixed_2of4[name], mixed_models[name]
    assert tuned.pruned == sparse_kernels.plan(source, "2of4").sparse
    for layer in tuned.pruned:
        kept, before = (sparse_kernels.kernel_variable(m.get_layer(layer)).numpy()
                        for m in (tuned.model, source))
        assert overfull(kept, -2) == 0, layer
        assert np.mean(kept == 0) == 0.5, layer  # exactly 2 of 4: masked, not just small
        assert np.mean(before == 0) < 0.01, layer  # the source model is left dense


def test_the_depthwise_half_of_a_separable_conv_stays_dense(mixed_2of4):
    model = mixed_2of4["image"].model
    assert np.mean(model.get_layer("sep").depthwise_kernel.numpy() == 0) < 0.01
    assert np.mean(model.get_layer("stem").kernel.numpy() == 0) < 0.01  # 1 input: not eligible


@pytest.mark.parametrize("name", ["image", "sequence"])
def test_the_fine_tuned_model_is_plain_layers(name, mixed_models, mixed_2of4):
    tuned, source = mixed_2of4[name].model, mixed_models[name]
    assert [(type(l), l.name) for l in tuned.layers] == [(type(l), l.name) for l in source.layers]


def test_the_own_mask_holds_after_every_step():
    inputs = tf_keras.Input((12, 8))
    model = tf_keras.Model(inputs, L.GlobalAveragePooling1D()(L.Conv1D(4, 3, name="c")(inputs)))
    model.compile(tf_keras.optimizers.Adam(0.1), "mse")
    seen = []

    class Record(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(overfull(model.get_layer("c").kernel.numpy(), -2))
    x = np.random.default_rng(0).normal(size=(32, 12, 8)).astype(np.float32)
    model.fit(x, np.ones((32, 4)), batch_size=8, verbose=0,
              callbacks=[sparse_finetune.mask_callback([model.get_layer("c")]), Record()])
    assert seen == [0, 0, 0, 0]


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
