"""The checks that read a written .tflite: 2:4 groups where the pipeline meant them, 1x4 blocks."""
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from pipeline.export import flatbuffer as tflite_weights
from pipeline.export import metadata, sparse_check, sparse_finetune, sparse_kernels
from pipeline.export import variants as export

L = tf_keras.layers


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
    found = sparse_check.check_2of4(path, sparse_kernels.file_kernels(two_of_four.model))
    assert set(found.eligible) == set(two_of_four.pruned)  # located by layer, not tensor name
    assert all(z == pytest.approx(0.5, abs=1e-3) for z in found.eligible.values())
    (reason,) = found.not_eligible.values()  # block1_conv1, 1 input channel: not made 2:4
    assert reason == "not made 2:4"
    note = sparse_check.verify_2of4(path, two_of_four.model)
    assert note.startswith("2:4 verified in the file: 7 kernel(s) 2:4 (block1_conv2, ")
    assert note.endswith("; 50% zeros); 1 other conv/FC kernel(s) not made 2:4")


def test_the_file_alone_checks_the_kernels_it_stores_sparse(two_of_four, tmp_path):
    path = write_tflite(two_of_four.model, tmp_path / "m.tflite")
    found = sparse_check.check_2of4(path)
    assert len(found.eligible) == 7
    (reason,) = found.not_eligible.values()
    assert reason == "stored dense"


def test_densified_file_weights_equal_the_keras_kernels(two_of_four, tmp_path):
    path = write_tflite(two_of_four.model, tmp_path / "m.tflite")
    kernels = {sparse_check.short_name(k.name): k for k in tflite_weights.read_kernels(path)}
    assert kernels["block2_conv1"].sparse_format == "random"
    for name in ("block2_conv1", "block3_conv2"):  # BatchNorm is folded in: same zeros
        keras = tflite_layout(two_of_four.model.get_layer(name).kernel.numpy())
        np.testing.assert_array_equal(kernels[name].values == 0, keras == 0)
    keras = two_of_four.model.get_layer("predictions").kernel.numpy()  # no BatchNorm: same values
    np.testing.assert_array_equal(kernels["predictions"].values, tflite_layout(keras))


def test_2of4_check_rejects_a_dense_file_naming_the_layers(tiny_classifier, tmp_path):
    path = write_tflite(tiny_classifier, tmp_path / "dense.tflite", sparse=False)
    with pytest.raises(sparse_check.SparsityError,
                       match=r"breaks 2:4 sparsity: block1_conv2: \d+ of \d+ groups of 4 hold "
                             "more than 2 non-zeros"):
        sparse_check.verify_2of4(path, tiny_classifier)  # the 7 eligible layers must be 2:4


@pytest.mark.parametrize("name", ["image", "sequence"])
def test_each_planned_layer_is_2of4_in_the_file(name, mixed_2of4, tmp_path):
    tuned = mixed_2of4[name]
    path = write_tflite(tuned.model, tmp_path / f"{name}.tflite")
    kernels = [k for k in tflite_weights.read_kernels(path) if k.op != "DEPTHWISE_CONV_2D"]
    for layer, want in sparse_kernels.file_kernels(tuned.model).items():
        # Read back from the file: one kernel has exactly this layer's zeros, 2 of every 4 inputs.
        (mine,) = [k for k in kernels if k.values.size == want.size
                   and np.array_equal(k.values.reshape(want.shape) == 0, want == 0)]
        assert sparse_check.overfull_groups(mine.values) == (0, want.size // 4), layer
        assert np.mean(mine.values == 0) == 0.5 and mine.sparse_format == "random", layer
    found = sparse_check.check_2of4(path, sparse_kernels.file_kernels(tuned.model))
    assert tuple(found.eligible) == tuned.pruned


def test_the_image_model_lands_as_the_layouts_2of4_runs_along(mixed_2of4, tmp_path):
    path = write_tflite(mixed_2of4["image"].model, tmp_path / "image.tflite")
    shapes = [(k.op, k.values.shape) for k in tflite_weights.read_kernels(path)]
    assert shapes == [("CONV_2D", (16, 3, 3, 1)), ("DEPTHWISE_CONV_2D", (1, 3, 3, 16)),
                      ("CONV_2D", (16, 1, 1, 16)),  # sep: depthwise, then pointwise (BN folded)
                      ("DEPTHWISE_CONV_2D", (1, 3, 3, 16)),
                      ("CONV_2D", (16, 3, 3, 8)),  # grouped: one group's 8 inputs last
                      ("CONV_2D", (8, 1, 1, 2)), ("FULLY_CONNECTED", (12, 8)),
                      ("FULLY_CONNECTED", (10, 12))]
    path = write_tflite(mixed_2of4["sequence"].model, tmp_path / "sequence.tflite")
    conv1d = [k.values.shape for k in tflite_weights.read_kernels(path) if k.op == "CONV_2D"]
    assert conv1d == [(16, 1, 3, 8), (16, 1, 1, 16), (16, 1, 3, 8)]  # (O, 1, k, I)


@pytest.mark.parametrize("layer", ["sep", "grouped", "fc"])
def test_a_kernel_meant_2of4_but_written_dense_fails_naming_its_layer(layer, mixed_models,
                                                                     mixed_2of4, tmp_path):
    meant = mixed_2of4["image"].model
    written = tf_keras.models.clone_model(meant)
    written.set_weights(meant.get_weights())
    dense = sparse_kernels.kernel_variable(mixed_models["image"].get_layer(layer)).numpy()
    sparse_kernels.kernel_variable(written.get_layer(layer)).assign(dense)
    path = write_tflite(written, tmp_path / "broken.tflite")
    with pytest.raises(sparse_check.SparsityError,
                       match=f"breaks 2:4 sparsity: {layer}: no kernel of shape .* in the file "
                             "holds its zeros") as error:
        sparse_check.check_2of4(path, sparse_kernels.file_kernels(meant))
    assert str(error.value).count("holds its zeros") == 1  # the other layers pass


def test_a_kernel_left_dense_on_purpose_is_not_checked(mixed_models, mixed_2of4, tmp_path):
    meant = mixed_2of4["image"].model
    written = tf_keras.models.clone_model(meant)
    written.set_weights(meant.get_weights())
    dense = mixed_models["image"].get_layer("sep").pointwise_kernel.numpy()
    written.get_layer("sep").pointwise_kernel.assign(dense)
    expected = sparse_kernels.file_kernels(written)
    expected.pop("sep")  # the pipeline did not mean it 2:4: a dense 16-input CONV_2D is fine
    found = sparse_check.check_2of4(write_tflite(written, tmp_path / "m.tflite"), expected)
    assert "sep" not in found.eligible and len(found.eligible) == 3
    assert list(found.not_eligible.values()).count("not made 2:4") == 3  # stem, sep, 2-input


def test_nothing_meant_2of4_verifies_a_dense_file(tmp_path):
    inputs = tf_keras.Input((6,))
    model = tf_keras.Model(inputs, L.Dense(8, name="out")(inputs))  # 6 inputs: not eligible
    note = sparse_check.verify_2of4(write_tflite(model, tmp_path / "m.tflite"), model)
    assert note == "2:4 verified in the file: no layer was meant 2:4, none checked"


def mini_xception(classes=7):
    """The outside model's shape: SeparableConv2D + BN, residual Adds, strided 1x1 convs."""
    inputs = tf_keras.Input((64, 64, 1))
    x = L.Conv2D(8, 3, strides=2, use_bias=False, name="stem1")(inputs)
    x = L.ReLU()(L.BatchNormalization(name="stem1_bn")(x))
    x = L.Conv2D(16, 3, use_bias=False, name="stem2")(x)
    x = L.ReLU()(L.BatchNormalization(name="stem2_bn")(x))
    for i, width in enumerate((16, 32)):
        # 16 inputs to the strided 1x1 conv: 8 crash oneDNN's backward pass on this CPU.
        residual = L.Conv2D(width, 1, strides=2, padding="same", use_bias=False,
                            name=f"res{i}")(x)
        residual = L.BatchNormalization(name=f"res{i}_bn")(residual)
        x = L.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"sep{i}a")(x)
        x = L.ReLU()(L.BatchNormalization(name=f"sep{i}a_bn")(x))
        x = L.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"sep{i}b")(x)
        x = L.BatchNormalization(name=f"sep{i}b_bn")(x)
        x = L.MaxPooling2D(3, strides=2, padding="same")(x)
        x = L.Add()([x, residual])
    x = L.Conv2D(classes, 3, padding="same", name="head")(x)
    x = L.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inputs, L.Softmax()(x), name="mini_xception")


def test_a_mini_xception_exports_pruned_2of4(tmp_path):
    tf_keras.utils.set_random_seed(0)
    model = mini_xception()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (32, 64, 64, 1)).astype(np.float32)
    labels = rng.integers(0, 7, 32)
    train = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8).repeat()
    context = export.ExportContext(
        calibration=tf.data.Dataset.from_tensor_slices((images, labels)), samples=8,
        train=train, steps_per_epoch=2, sparse=sparse_finetune.SparseRecipe(steps=2))
    labels_path = metadata.write_labels(str(tmp_path / "labels.txt"), [str(c) for c in range(7)])
    path = str(tmp_path / "pruned_2of4.tflite")
    tuned, record = export.export_variant(export.get_variant("pruned_2of4"), model, context,
                                          path, labels_path, metadata.ModelInfo("x"),
                                          export.Checks(images[:16]))
    meant = {"stem2", "res0", "sep0a", "sep0b", "res1", "sep1a", "sep1b", "head"}
    assert set(sparse_kernels.plan(tuned, "2of4").sparse) == meant
    note = next(n for n in record["notes"] if n.startswith("2:4 verified in the file"))
    assert note.startswith("2:4 verified in the file: 8 kernel(s) 2:4 (")
    assert any("stem1: 1 input channel(s), not a multiple of 4" in n for n in record["notes"])
    found = sparse_check.check_2of4(path, sparse_kernels.file_kernels(tuned))  # as shipped
    assert set(found.eligible) == meant
    # The RGB front's 3-input rgb_to_gray conv and stem1 are the file's dense kernels.
    assert list(found.not_eligible.values()) == ["not made 2:4"] * 2


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
