"""pipeline.export.parity on a multi-head file: every output checked, matched by shape."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from foreign_models import mtcnn_onet
from pipeline.export import parity


@pytest.fixture(scope="module")
def onet_file(tmp_path_factory):
    model = mtcnn_onet(classes=2)
    path = tmp_path_factory.mktemp("parity") / "onet.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return model, str(path)


def _images(n=8):
    return np.random.default_rng(0).random((n, 48, 48, 3), np.float32)


def test_every_output_of_a_multi_head_file_is_verified(onet_file):
    model, path = onet_file
    got, dtype = parity.tflite_outputs(path, _images(), every=True)
    assert sorted(g.shape[-1] for g in got) == [2, 4, 10] and dtype == "float32"
    result = parity.verify_parity(path, model, _images(), "onet")
    assert result["agreement"] == 1.0 and result["max_rel_diff"] < 1e-4


def test_a_drifted_head_fails_the_check_by_its_own_scale(onet_file):
    model, path = onet_file
    drifted = tf_keras.models.clone_model(model)
    drifted.set_weights(model.get_weights())
    bbox = drifted.get_layer("conv6-2")
    kernel, bias = bbox.get_weights()
    bbox.set_weights([kernel, bias + 0.01 * np.abs(kernel).max()])  # the bbox head only
    with pytest.raises(parity.VerificationError, match="variant 'onet': .* differs from its "
                       "Keras model by"):
        parity.verify_parity(path, drifted, _images(), "onet")
