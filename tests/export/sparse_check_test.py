"""The checks that read a written .tflite: 2:4 groups and 1x4 block-sparse storage."""
import re

import numpy as np
import pytest
import tensorflow as tf

from pipeline.export import flatbuffer as tflite_weights
from pipeline.export import sparse_check


def write_tflite(model, path, sparse=True) -> str:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if sparse:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    path.write_bytes(converter.convert())
    return str(path)


def tflite_layout(kernel):
    """Keras (kh, kw, in, out) / (in, out) -> TFLite OHWI / (out, in)."""
    return kernel.T if kernel.ndim == 2 else kernel.transpose(3, 0, 1, 2)


def test_2of4_holds_in_the_written_file(two_of_four, tmp_path):
    path = write_tflite(two_of_four.model, tmp_path / "m.tflite")
    found = sparse_check.check_2of4(path)
    assert len(found.eligible) == 7 and all(z >= 0.5 for z in found.eligible.values())
    (reason,) = found.not_eligible.values()
    assert "1 input channel" in reason
    note = sparse_check.verify_2of4(path, two_of_four.pruned)
    assert note.startswith("2:4 verified in the file: 7 kernels checked")


def test_2of4_verify_counts_the_fine_tuned_layers(two_of_four, tmp_path):
    path = write_tflite(two_of_four.model, tmp_path / "m.tflite")
    with pytest.raises(sparse_check.SparsityError, match="8 layers were fine-tuned 2:4"):
        sparse_check.verify_2of4(path, two_of_four.pruned + ("extra",))


def test_densified_file_weights_equal_the_keras_kernels(two_of_four, tmp_path):
    path = write_tflite(two_of_four.model, tmp_path / "m.tflite")
    kernels = {sparse_check.short_name(k.name): k for k in tflite_weights.read_kernels(path)}
    assert kernels["block2_conv1"].sparse_format == "random"
    for name in ("block2_conv1", "block3_conv2"):  # BatchNorm is folded in: same zeros
        keras = tflite_layout(two_of_four.model.get_layer(name).kernel.numpy())
        np.testing.assert_array_equal(kernels[name].values == 0, keras == 0)
    keras = two_of_four.model.get_layer("predictions").kernel.numpy()  # no BatchNorm: same values
    np.testing.assert_array_equal(kernels["predictions"].values, tflite_layout(keras))


def test_2of4_check_rejects_a_dense_file(tiny_classifier, tmp_path):
    path = write_tflite(tiny_classifier, tmp_path / "dense.tflite", sparse=False)
    with pytest.raises(sparse_check.SparsityError, match="breaks 2:4 sparsity: .*block1_conv2"):
        sparse_check.check_2of4(path)


def test_block_fc_is_stored_1x4_block_sparse(block_fc, tmp_path):
    path = write_tflite(block_fc.model, tmp_path / "block.tflite")
    found = sparse_check.check_block_fc(path)
    (fraction,) = found.eligible.values()
    assert fraction == pytest.approx(0.8, abs=0.05)
    kernels = {sparse_check.short_name(k.name): k for k in tflite_weights.read_kernels(path)}
    assert kernels["fc"].sparse_format == "block 1x4"
    keras = block_fc.model.get_layer("fc").kernel.numpy().T  # fc_bn is folded in: same zeros
    np.testing.assert_array_equal(kernels["fc"].values == 0, keras == 0)
    note = sparse_check.verify_block_fc(path, block_fc.pruned)
    assert re.match(r"1x4 block-sparse FULLY_CONNECTED verified in the file: fc \d+% zero blocks",
                    note)


def test_block_fc_check_rejects_a_dense_file(tiny_classifier, tmp_path):
    path = write_tflite(tiny_classifier, tmp_path / "dense.tflite", sparse=False)
    with pytest.raises(sparse_check.SparsityError, match="no 1x4 block-sparse"):
        sparse_check.check_block_fc(path)
    # Nothing was fine-tuned block-sparse: a dense file is what was expected.
    assert "verified in the file: none" in sparse_check.verify_block_fc(path, ())


def test_short_name():
    assert sparse_check.short_name("m/re_lu_1/Relu;m/c2/BiasAdd;m/c2/Conv2D;m/c2/x") == "c2"
    assert sparse_check.short_name("vgg_rgb/vgg/fc/MatMul;vgg_rgb/vgg/fc/BiasAdd") == "fc"
    assert sparse_check.short_name("vgg_rgb/vgg/fc_bn/batchnorm/mul_1") == "fc_bn"
