"""2:4 and 1x4 block-FC fine-tuning, and the checks that read the written .tflite."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from pipeline.export import sparse as sparsity
from pipeline.export import flatbuffer as tflite_weights

RECIPE = sparsity.SparseRecipe(epochs=1, steps=4)


def convert(model, path, sparse=True):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if sparse:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    path.write_bytes(converter.convert())
    return str(path)


def tflite_layout(kernel):
    """Keras (kh, kw, in, out) / (in, out) -> TFLite OHWI / (out, in)."""
    return kernel.T if kernel.ndim == 2 else kernel.transpose(3, 0, 1, 2)


@pytest.fixture(scope="module")
def two_of_four(tiny_classifier, tiny_data):
    return sparsity.finetune_sparse(tiny_classifier, "2of4", RECIPE, tiny_data.train,
                                    tiny_data.steps_per_epoch)


@pytest.fixture(scope="module")
def block_fc(tiny_classifier, tiny_data):
    return sparsity.finetune_sparse(tiny_classifier, "block_fc", RECIPE, tiny_data.train,
                                    tiny_data.steps_per_epoch)


def test_2of4_leaves_the_source_model_unchanged(tiny_classifier, two_of_four):
    before = tiny_classifier.get_layer("block2_conv1").kernel.numpy()
    assert np.mean(before == 0) < 0.01  # the source is still dense
    after = two_of_four.model.get_layer("block2_conv1").kernel.numpy()
    assert np.mean(after == 0) >= 0.5


def test_2of4_eligibility_names_the_reasons(two_of_four):
    assert two_of_four.skipped == {"block1_conv1": "1 input channel(s), not a multiple of 4"}
    assert set(two_of_four.pruned) == {"block1_conv2", "block2_conv1", "block2_conv2",
                                       "block3_conv1", "block3_conv2", "fc", "predictions"}


def test_2of4_holds_in_the_written_file(two_of_four, tmp_path):
    path = convert(two_of_four.model, tmp_path / "m.tflite")
    found = sparsity.check_2of4(path)
    assert len(found.eligible) == 7 and all(z >= 0.5 for z in found.eligible.values())
    (reason,) = found.not_eligible.values()
    assert "1 input channel" in reason


def test_densified_file_weights_equal_the_keras_kernels(two_of_four, tmp_path):
    path = convert(two_of_four.model, tmp_path / "m.tflite")
    kernels = {sparsity.short_name(k.name): k for k in tflite_weights.read_kernels(path)}
    assert kernels["block2_conv1"].sparse_format == "random"
    for name in ("block2_conv1", "block3_conv2"):  # BatchNorm is folded in: same zeros
        keras = tflite_layout(two_of_four.model.get_layer(name).kernel.numpy())
        np.testing.assert_array_equal(kernels[name].values == 0, keras == 0)
    keras = two_of_four.model.get_layer("predictions").kernel.numpy()  # no BatchNorm: same values
    np.testing.assert_array_equal(kernels["predictions"].values, tflite_layout(keras))


def test_2of4_check_rejects_a_dense_file(tiny_classifier, tmp_path):
    path = convert(tiny_classifier, tmp_path / "dense.tflite", sparse=False)
    with pytest.raises(sparsity.SparsityError, match="breaks 2:4 sparsity: .*block1_conv2"):
        sparsity.check_2of4(path)


def test_block_fc_is_stored_1x4_block_sparse(block_fc, tmp_path):
    assert block_fc.pruned == ("fc",)
    assert "kept dense" in block_fc.skipped["predictions"]
    assert "Dense (FULLY_CONNECTED) only" in block_fc.skipped["block1_conv1"]
    path = convert(block_fc.model, tmp_path / "block.tflite")
    found = sparsity.check_block_fc(path)
    (fraction,) = found.eligible.values()
    assert fraction == pytest.approx(0.8, abs=0.05)
    kernels = {sparsity.short_name(k.name): k for k in tflite_weights.read_kernels(path)}
    assert kernels["fc"].sparse_format == "block 1x4"
    keras = block_fc.model.get_layer("fc").kernel.numpy().T  # fc_bn is folded in: same zeros
    np.testing.assert_array_equal(kernels["fc"].values == 0, keras == 0)


def test_block_fc_check_rejects_a_dense_file(tiny_classifier, tmp_path):
    path = convert(tiny_classifier, tmp_path / "dense.tflite", sparse=False)
    with pytest.raises(sparsity.SparsityError, match="no 1x4 block-sparse"):
        sparsity.check_block_fc(path)


def test_no_eligible_layer_returns_an_unchanged_copy():
    inputs = tf_keras.Input((6,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(3, name="out")(inputs))
    tuned = sparsity.finetune_sparse(model, "2of4", RECIPE, None, 1)
    assert tuned.pruned == () and "6 input channel" in tuned.skipped["out"]
    assert tuned.model is not model
    np.testing.assert_array_equal(tuned.model.get_weights()[0], model.get_weights()[0])


def test_bad_recipe_and_mode():
    with pytest.raises(sparsity.SparsityError, match="epochs >= 1"):
        sparsity.SparseRecipe(epochs=0)
    with pytest.raises(sparsity.SparsityError, match="mode must be one of"):
        sparsity.finetune_sparse(None, "3of8", RECIPE, None, 1)


def test_short_name():
    assert sparsity.short_name("m/re_lu_1/Relu;m/c2/BiasAdd;m/c2/Conv2D;m/c2/x") == "c2"
    assert sparsity.short_name("vgg_rgb/vgg/fc/MatMul;vgg_rgb/vgg/fc/BiasAdd") == "fc"
    assert sparsity.short_name("vgg_rgb/vgg/fc_bn/batchnorm/mul_1") == "fc_bn"
