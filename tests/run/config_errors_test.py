"""The run layer's spelling of library errors: the argument becomes its --config. key."""
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
from pipeline.data import datasets, loaders
from pipeline.errors import PruningError
from pipeline.run import config_errors
from pipeline.run.config_errors import spelled


def test_a_real_data_error_names_the_config_key(tmp_path):
    with pytest.raises(loaders.DataError) as error:
        loaders.load("fashion_mnist", str(tmp_path))
    assert error.value.argument == "data_dir"
    text = spelled(error.value)
    assert text.startswith(f"Fashion-MNIST: --config.data.dir='{tmp_path}' lacks t10k-images")
    assert text.endswith("; pass --config.data.dir=<the folder holding the four IDX .gz files>")
    assert "data_dir" not in text


def test_an_option_of_make_datasets_names_its_key(tmp_path):
    with pytest.raises(loaders.DataError) as error:
        datasets.make_datasets("fashion_mnist", data_dir=str(tmp_path), channels=2)
    assert spelled(error.value) == ("--config.model.channels=2 must be 0 (the data's own), "
                                    "1 or 3")


def test_unknown_or_missing_argument_leaves_the_message_as_is():
    for error in (PruningError("ratios=(1.5,) holds [1.5]", argument="ratios"),
                  PruningError("dataset holds no batches; pass dataset=<batches>",
                               argument="dataset"),
                  PruningError("data_dir='' is empty"),
                  ValueError("data_dir='' is empty")):
        assert spelled(error) == str(error)


def test_only_the_whole_argument_name_is_rewritten():
    error = PruningError("ratio=0.9 (min_ratio=0.1, ratios=(0.5,), --config.prune.ratio=0.9); "
                         "pass ratio=<less>", argument="ratio")
    assert spelled(error) == ("--config.prune.ratio=0.9 (min_ratio=0.1, ratios=(0.5,), "
                              "--config.prune.ratio=0.9); pass --config.prune.ratio=<less>")


def test_every_key_exists_in_the_default_config():
    from configs import default
    config = default.get_config()
    for argument, key in config_errors.ARGUMENT_KEYS.items():
        node = config
        for part in key.split("."):
            assert part in node, f"{argument} -> config.{key}: no such key"
            node = node[part]
    assert config_errors.config_key("data_dir") == "data.dir"
    assert config_errors.config_key(None) is None and config_errors.config_key("nope") is None
