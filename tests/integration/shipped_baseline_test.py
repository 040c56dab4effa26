"""The baseline shipped in models/weights is what the default config and README promise."""
import numpy as np
import tf_keras

import pipeline
from configs import default
from pipeline.data import loaders


def test_shipped_baseline_reaches_93_percent_on_the_test_split():
    config = default.get_config()
    model = tf_keras.models.load_model(config.model.path, compile=False)
    splits = loaders.load("fashion_mnist")  # make setup installs dataset-fashion-mnist
    x = splits.x_test.astype("float32") / 255.0
    predictions = model.predict(x, batch_size=500, verbose=0).argmax(-1)
    accuracy = float(np.mean(predictions == splits.y_test.reshape(-1)))
    assert accuracy >= 0.930
    assert pipeline.count_macs(model) == 29_144_832
