"""Sparse fine-tunes shared by the sparse tests: the tiny classifier, and models mixing layer
kinds, the latter built in both Kerases (tf_keras through TF-MOT, Keras 3 through the
project's own masks)."""
import numpy as np
import pytest
import tensorflow as tf

from kerases import KERAS_IDS, KERASES
from pipeline.export import sparse_finetune

RECIPE = sparse_finetune.SparseRecipe(epochs=1, steps=4)


@pytest.fixture(scope="session")
def two_of_four(tiny_classifier, tiny_data):
    return sparse_finetune.finetune_sparse(tiny_classifier, "2of4", RECIPE, tiny_data.train,
                                           tiny_data.steps_per_epoch)


@pytest.fixture(scope="session")
def block_fc(tiny_classifier, tiny_data):
    return sparse_finetune.finetune_sparse(tiny_classifier, "block_fc", RECIPE, tiny_data.train,
                                           tiny_data.steps_per_epoch)


def mixed_image_model(K):
    """SeparableConv2D, grouped Conv2D, Dense, and layers that stay dense (16x16x1 input)."""
    L = K.layers
    inputs = K.Input((16, 16, 1))
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)
    x = L.SeparableConv2D(16, 3, padding="same", name="sep")(x)
    x = L.BatchNormalization(name="sep_bn")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(16, 3, padding="same", groups=2, activation="relu", name="grouped")(x)
    x = L.Conv2D(8, 1, groups=8, name="narrow_groups")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(12, activation="relu", name="fc")(x)
    return K.Model(inputs, L.Dense(10, name="predictions")(x), name="mixed_image")


def mixed_sequence_model(K):
    """Conv1D (plain and grouped), SeparableConv1D and a Dense per step on a (T, C) input."""
    L = K.layers
    inputs = K.Input((24, 8))
    x = L.Conv1D(16, 3, activation="relu", name="c1d")(inputs)
    x = L.SeparableConv1D(16, 3, name="sep1d")(x)
    x = L.Conv1D(16, 3, groups=2, activation="relu", name="c1d_grouped")(x)
    x = L.Dense(8, name="per_step")(x)
    x = L.GlobalAveragePooling1D()(x)
    return K.Model(inputs, L.Dense(10, name="predictions")(x), name="mixed_sequence")


def random_batches(model, n=64, batch=16):
    """Repeating batches of random inputs and labels for ``model`` (10 classes)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n,) + tuple(model.input_shape[1:])).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 10, n))).batch(batch).repeat()


@pytest.fixture(scope="session", params=KERAS_IDS)
def mixed_models(request):
    """name -> an untrained model mixing the layer kinds 2:4 must cover, in each Keras."""
    K = KERASES[KERAS_IDS.index(request.param)]
    K.utils.set_random_seed(0)
    return {"image": as_loaded(mixed_image_model(K)),
            "sequence": as_loaded(mixed_sequence_model(K))}


def as_loaded(model):
    """``model`` rebuilt from its config, as the run sees it (loaded or pruned): a freshly
    built Keras 3 model's unnamed input is the layer ``input_layer`` holding the tensor
    ``keras_tensor``, and ``clone_model`` names the copy's input layer after the tensor."""
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


@pytest.fixture(scope="session")
def mixed_2of4(mixed_models):
    """name -> the 2:4 fine-tune (4 steps) of that mixed model."""
    return {name: sparse_finetune.finetune_sparse(model, "2of4", RECIPE, random_batches(model), 4)
            for name, model in mixed_models.items()}
