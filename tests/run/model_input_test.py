"""The data's image size and channels: the model file's declared input, unless overridden."""
import pytest

import tf_keras
from configs import common
from declared_inputs import narrow_model
from pipeline.errors import UnsupportedModelError
from pipeline.run import model_input

L = tf_keras.layers


def _section(**overrides):
    return common.model(path="m.h5", **overrides)


def test_model_declares_size_and_channels():
    assert model_input.data_shape(_section(), narrow_model((64, 64, 1))) == (64, 1)
    assert model_input.data_shape(_section(), narrow_model((40, 40, 3))) == (40, 3)


def test_overrides_win():
    model = narrow_model((64, 64, 1))
    assert model_input.data_shape(_section(input_size=32), model) == (32, 1)
    assert model_input.data_shape(_section(channels=3), model) == (64, 3)


def test_built_from_name_takes_the_data_as_they_are():
    assert common.model().input_size == 0 and common.model().channels == 0
    assert model_input.data_shape(common.model()) == (0, 0)
    assert model_input.data_shape(common.model(input_size=32, channels=3)) == (32, 3)


def test_unknown_height_and_width_take_the_data_size():
    x = inputs = tf_keras.Input((None, None, 3))
    x = L.GlobalAveragePooling2D()(L.Conv2D(8, 3)(x))
    model = tf_keras.Model(inputs, L.Dense(7)(x))
    assert model_input.data_shape(_section(), model) == (0, 3)


@pytest.mark.parametrize("shapes,match", [
    ([(8, 8, 1), (8, 8, 1)], r"m.h5 takes 2 inputs \[\(8, 8, 1\), \(8, 8, 1\)\]; the pipeline "
                             r"feeds one image input"),
    ([(16,)], r"m.h5 takes inputs of shape \(16,\); the pipeline feeds one image input"),
    ([(8, 8, 4)], r"takes inputs of shape \(8, 8, 4\)"),
    ([(64, 48, 1)], "m.h5 takes 64x48 inputs; the data loaders resize images to a square side"),
])
def test_inputs_the_pipeline_cannot_feed_fail_in_one_line(shapes, match):
    inputs = [tf_keras.Input(s) for s in shapes]
    flat = [L.Flatten()(i) if len(s) > 1 else i for i, s in zip(inputs, shapes)]
    x = L.Concatenate()(flat) if len(flat) > 1 else flat[0]
    model = tf_keras.Model(inputs, L.Dense(7)(x))
    with pytest.raises(UnsupportedModelError, match=match):
        model_input.data_shape(_section(), model)
