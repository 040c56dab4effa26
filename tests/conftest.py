"""Test setup: import pipeline first so tf_keras (Keras 2) is selected before TensorFlow."""
import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow loads)
import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture(scope="module", params=["tf_keras", "keras3"])
def K(request):
    """The Keras module to build with: tf_keras (Keras 2) or Keras 3 (see tests/kerases.py)."""
    from kerases import KERASES, KERAS_IDS
    return KERASES[KERAS_IDS.index(request.param)]


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    tf.random.set_seed(0)
    yield


def _tiny_datasets():
    """5,000 Fashion-MNIST training images (10% validation), 200 test images, batches of 32.

    The training split is shuffled and augmented anew by every pass over it, so
    what it yields depends on how often it was read before: a test whose outcome
    depends on those batches takes a fresh copy (:func:`make_tiny_data`).
    """
    from pipeline.data import datasets as data
    return data.make_datasets("fashion_mnist", batch_size=32, val_split=0.1, subset=5000,
                              test_subset=200, seed=0)


@pytest.fixture(scope="session")
def tiny_data():
    """The session's shared :func:`_tiny_datasets`."""
    return _tiny_datasets()


@pytest.fixture(scope="session")
def make_tiny_data():
    """Makes a fresh :func:`_tiny_datasets`, whose batches no earlier test has moved on."""
    return _tiny_datasets


@pytest.fixture(scope="session")
def tiny_classifier(tiny_data):
    """A VGG-shaped tf_keras CNN, 32-128 channels, no BatchNorm, trained for 4 epochs
    (about 12 s): :func:`_trained_tiny_classifier`."""
    import tf_keras
    return _trained_tiny_classifier(tf_keras, tiny_data)


@pytest.fixture(scope="session")
def tiny_classifier_keras3(tiny_data):
    """:func:`tiny_classifier`'s architecture and recipe, built and trained in Keras 3."""
    import keras
    return _trained_tiny_classifier(keras, tiny_data)


@pytest.fixture(params=["tf_keras", "keras3"])
def tiny_classifier_of_each(request):
    """The tiny classifier in each Keras: the export tests that take it run for both."""
    return request.getfixturevalue(
        "tiny_classifier" if request.param == "tf_keras" else "tiny_classifier_keras3")


def _trained_tiny_classifier(K, tiny_data):
    """A VGG-shaped CNN in Keras ``K``, 32-128 channels, no BatchNorm, 4 epochs of Adam.

    Every layer but the first has a multiple of 4 inputs (2:4-eligible). Label
    smoothing keeps the logits' range, hence their int8 step, small: measured
    here, int8 flipped the top-1 class of 2.0% of validation images without it
    (near-ties) and 0.4% with it, against the 99% agreement the export demands.
    """
    from pipeline.training import fit as train
    layers = K.layers
    K.utils.set_random_seed(0)
    x = inputs = K.Input(tiny_data.input_shape, name="image")
    for block, width in ((1, 32), (2, 64), (3, 128)):
        for conv in (1, 2):
            x = layers.Conv2D(width, 3, padding="same", activation="relu",
                              name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(32, activation="relu", name="fc")(x)
    outputs = layers.Dense(tiny_data.num_classes, activation="softmax", name="predictions")(x)
    model = K.Model(inputs, outputs, name="tiny")
    train.compile_model(model, train.Recipe(epochs=4, lr=3e-3, optimizer="adam",
                                            label_smoothing=0.1), tiny_data.steps_per_epoch)
    fresh = _tiny_datasets()  # the same weights whichever tests ran first
    model.fit(fresh.train, epochs=4, steps_per_epoch=fresh.steps_per_epoch, verbose=0)
    return model
