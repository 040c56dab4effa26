"""pipeline.main's own helpers (the whole run is tests/integration/main_test.py)."""
import ml_collections
import pytest

from pipeline import main


@pytest.mark.parametrize("path, name, expected", [
    ("/models/fer2013_mini_XCEPTION.hdf5", "vgg", "fer2013_mini_XCEPTION"),
    ("exported/saved_model_dir/", "vgg", "saved_model_dir"),  # a SavedModel folder
    ("", "resnet20", "resnet20"),  # trained here: the registry name
])
def test_the_metadata_names_a_model_file_after_the_file_not_model_name(path, name, expected):
    # model.name keeps its default 'vgg' when model.path is given: a MobileNetV2 file's
    # .tflite metadata said "vgg_pruned_fp32".
    section = ml_collections.ConfigDict({"path": path, "name": name})
    assert main.model_name(section) == expected
