"""pipeline.export.parity on a multi-head file (each Keras): every output checked, matched by
shape."""
import numpy as np
import pytest

from foreign_models import mtcnn_onet
from pipeline import keras_api
from pipeline.export import parity, quantize


@pytest.fixture(scope="module")
def onet_file(K, tmp_path_factory):
    model = mtcnn_onet(classes=2, K=K)
    path = tmp_path_factory.mktemp("parity") / "onet.tflite"
    path.write_bytes(quantize.keras_converter(model).convert())  # heads named, as the run does
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
    drifted = keras_api.copy_model(model)
    bbox = drifted.get_layer("conv6-2")
    kernel, bias = bbox.get_weights()
    bbox.set_weights([kernel, bias + 0.01 * np.abs(kernel).max()])  # the bbox head only
    with pytest.raises(parity.VerificationError, match="variant 'onet': .* differs from its "
                       "Keras model by"):
        parity.verify_parity(path, drifted, _images(), "onet")


def test_a_near_tie_flipped_still_agrees_a_real_flip_does_not():
    expected = np.array([[0.30, 0.29, 0.41],         # top 2; the file picks 0 (0.11 below)
                         [0.40, 0.39, 0.21],          # top 0; the file picks 1 (0.01 below: tie)
                         [0.10, 0.80, 0.10],          # agree
                         [0.70, 0.20, 0.10]])         # agree
    got = np.array([[0.5, 0.2, 0.3], [0.3, 0.5, 0.2], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    strict, with_ties = parity.top1_agreement(expected, got)
    assert strict == 0.5 and with_ties == 0.75  # tie: 0.01 <= 0.02 * 0.8
    # Logits: the tie is relative to the largest output (here 10), so 0.1 apart is a tie.
    strict, with_ties = parity.top1_agreement(expected * 12.5, got)
    assert (strict, with_ties) == (0.5, 0.75)
