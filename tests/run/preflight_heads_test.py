"""The preflight on a multi-head model: its classifier head is checked against the data."""
import types

import pytest

from configs import default
from foreign_models import mtcnn_onet
from pipeline.run import preflight
from pipeline.training.heads import HeadError


def _data(classes):
    return types.SimpleNamespace(input_shape=(48, 48, 3), num_classes=classes,
                                 class_names=[f"c{i}" for i in range(classes)])


def _config(variants=()):
    config = default.get_config()
    config.model.path = "onet.h5"
    config.export.variants = variants
    return config


def test_the_face_head_matches_two_classes():
    # It said "onet.h5 has (None, 2) output classes but the data has 2".
    preflight.check_model(_config(), _data(2), mtcnn_onet(classes=2))


def test_no_head_of_the_data_width_lists_the_outputs():
    with pytest.raises(HeadError, match=r"onet.h5 has 3 outputs \(conv6-2 \(4,\), conv6-3 "
                       r"\(10,\), conv6-1 \(2,\)\) and none of them is a 3-class classifier"):
        preflight.check_model(_config(), _data(3), mtcnn_onet(classes=2))


def test_export_variants_do_not_stop_it():
    # The export stage records them as not applicable; pruning and fine-tuning go ahead.
    preflight.check_model(_config(("pruned_fp32", "pruned_int8")), _data(2),
                          mtcnn_onet(classes=2))
