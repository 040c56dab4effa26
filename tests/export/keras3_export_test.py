"""The export layer on Keras 3 models: this project's own sparse masks (no TF-MOT), the RGB
front and the parity noise copy built in Keras 3, and the files verified as for tf_keras."""
import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
from pipeline import keras_api
from pipeline.export import parity, rgb_front, sparse_check, sparse_finetune, sparse_kernels

RECIPE = sparse_finetune.SparseRecipe(epochs=1, steps=3, block_sparsity=0.75, bn_batches=2)


def classifier(K, channels=1):
    """Conv-BN, SeparableConv2D, a hidden Dense and a softmax head: every kernel a multiple
    of 4 but the first conv's input."""
    K.utils.set_random_seed(0)
    x = inputs = K.Input((12, 12, channels))
    x = K.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    x = K.layers.BatchNormalization(name="bn")(x)
    x = K.layers.ReLU()(x)
    x = K.layers.SeparableConv2D(8, 3, padding="same", name="sep")(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    x = K.layers.Dense(16, activation="relu", name="fc")(x)
    return K.Model(inputs, K.layers.Dense(4, activation="softmax", name="predictions")(x))


def batches(channels=1, n=48):
    rng = np.random.default_rng(0)
    x = rng.random((n, 12, 12, channels), dtype=np.float32)
    y = rng.integers(0, 4, n)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()


def test_block_mask_zeroes_the_weakest_blocks_of_four_inputs():
    kernel = np.arange(1, 33, dtype=np.float32).reshape(8, 4)  # 2 blocks of 4 inputs x 4 outputs
    mask = sparse_finetune.block_mask(kernel, 0.5)
    assert mask.shape == kernel.shape and mask.sum() == 16
    assert np.all(mask[:4] == 0) and np.all(mask[4:] == 1)  # the first block is the smaller


@pytest.mark.parametrize("mode", ["2of4", "block_fc"])
def test_keras3_sparse_fine_tune_uses_own_masks_and_the_file_passes(mode, tmp_path):
    import keras
    model = classifier(keras)
    before = [w.copy() for w in model.get_weights()]
    tuned = sparse_finetune.finetune_sparse(model, mode, RECIPE, batches(), 3)
    assert keras_api.is_keras3(tuned.model) and tuned.model is not model
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # untouched
    if mode == "2of4":
        assert set(tuned.pruned) == {"sep", "fc", "predictions"}
        assert tuned.skipped == {"conv": "1 input channel(s), not a multiple of 4"}
    else:
        assert tuned.pruned == ("fc",)
        kernel = tuned.model.get_layer("fc").kernel.numpy()
        blocks = np.abs(kernel).reshape(2, 4, 16).sum(axis=1)
        assert np.mean(blocks == 0) == pytest.approx(0.75)
    front = rgb_front.with_rgb_front(tuned.model)
    path = tmp_path / f"{mode}.tflite"
    converter = tf.lite.TFLiteConverter.from_keras_model(front)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    path.write_bytes(converter.convert())
    if mode == "2of4":
        sparse_check.check_2of4(str(path), sparse_kernels.file_kernels(tuned.model))
    else:
        sparse_check.check_block_fc(str(path))


def test_rgb_front_and_noise_copy_are_keras3_and_exact():
    import keras
    model = classifier(keras)
    front = rgb_front.with_rgb_front(model)
    assert keras_api.is_keras3(front) and front.input_shape == (1, 12, 12, 3)
    gray = np.random.default_rng(1).random((1, 12, 12, 1), dtype=np.float32)
    np.testing.assert_allclose(front(np.repeat(gray, 3, -1)), model(gray), atol=1e-5)
    images = np.random.default_rng(2).random((16, 12, 12, 1), dtype=np.float32)
    agreement = parity.rounding_agreement(model, images)
    assert 0.5 <= agreement <= 1.0 and agreement == parity.rounding_agreement(model, images)
