"""The model registry and builders: shapes, width options, errors, prunability."""
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import models
from models import registry
from pipeline.errors import RegistryError

OWN = ("vgg", "resnet20", "resnet56", "mobilenetv2")


@pytest.fixture
def clean_registry(monkeypatch):
    """A copy of the registry, so a test can register names without leaking them."""
    monkeypatch.setattr(registry, "_BUILDERS", registry._BUILDERS.copy())


@pytest.mark.parametrize("name", OWN)
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_builders_take_any_small_image_shape(name, shape):
    model = models.build(name, shape, 10)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, 10)
    assert model.layers[-1].get_config()["activation"] == "softmax"


@pytest.mark.parametrize("name", ("vgg", "resnet20", "mobilenetv2"))
def test_width_scales_the_parameter_count(name):
    full = models.build(name, (28, 28, 1), 10).count_params()
    half = models.build(name, (28, 28, 1), 10, width=0.5).count_params()
    assert half < 0.5 * full


def test_vgg_is_the_documented_lab_network():
    model = models.build("vgg", (28, 28, 1), 10)
    convs = [l.filters for l in model.layers if type(l).__name__ == "Conv2D"]
    assert convs == [32, 32, 64, 64, 128, 128]
    assert pipeline.count_macs(model) == 29_144_832
    assert models.build("vgg", (28, 28, 1), 10, head="flatten").count_params() > model.count_params()


def test_resnet_depths():
    def convs(name):
        return sum(type(l).__name__ == "Conv2D" and l.kernel_size == (3, 3)
                   for l in models.build(name, (32, 32, 3), 10).layers)
    assert convs("resnet20") == 19 and convs("resnet56") == 55  # + the Dense = 6n+2


@pytest.mark.parametrize("name", ("vgg", "resnet20", "mobilenetv2"))
def test_builders_are_prunable(name):
    model = models.build(name, (28, 28, 1), 10)
    result = pipeline.prune(model, 0.4, target="macs")
    assert result.model.output_shape == (None, 10)
    assert pipeline.count_macs(result.model) < 0.62 * pipeline.count_macs(model)


def test_applications_are_registered_untrained():
    assert {"MobileNetV2", "ResNet50", "VGG16", "EfficientNetB0"} <= set(models.names())
    model = models.build("MobileNetV2", (32, 32, 3), 7, width=0.35)
    assert model.output_shape == (None, 7)
    assert model.count_params() < models.build("MobileNetV2", (32, 32, 3), 7).count_params()


def test_application_without_width_option_says_so():
    with pytest.raises(ValueError, match="ResNet50 has no width multiplier"):
        models.build("ResNet50", (32, 32, 3), 10, width=0.5)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(RegistryError, match="unknown model 'vggg'.*resnet20.*vgg"):
        models.build("vggg", (28, 28, 1), 10)


def test_unknown_option_names_the_model():
    with pytest.raises(ValueError, match="model 'vgg' does not take options \\['depth'\\]"):
        models.build("vgg", (28, 28, 1), 10, depth=3)


def test_bad_option_values_raise():
    with pytest.raises(ValueError, match="head"):
        models.build("vgg", (28, 28, 1), 10, head="attention")
    with pytest.raises(ValueError, match="6n\\+2"):
        from models import resnet
        resnet.cifar_resnet((32, 32, 3), 10, depth=21)
    with pytest.raises(ValueError, match="smaller than 16x16"):
        models.build("mobilenetv2", (8, 8, 1), 10)


def test_registering_a_name_twice_is_an_error(clean_registry):
    @models.register("tiny_test_model")
    def tiny(input_shape, num_classes):
        return models.build("vgg", input_shape, num_classes, width=0.25)

    assert "tiny_test_model" in models.names()
    assert models.build("tiny_test_model", (28, 28, 1), 3).output_shape == (None, 3)
    with pytest.raises(RegistryError, match="'tiny_test_model' is already registered"):
        models.register("tiny_test_model")(tiny)
    with pytest.raises(RegistryError, match="'vgg' is already registered"):
        models.register("vgg")(tiny)


def test_clean_registry_fixture_restores(clean_registry):
    models.add("temporary_name", lambda input_shape, num_classes: None)
    assert "temporary_name" in models.names()


def test_registry_is_restored_after_a_patched_test():
    assert "temporary_name" not in models.names()
    assert "tiny_test_model" not in models.names()


@pytest.mark.parametrize("name", ["vgg", "resnet20", "mobilenetv2", "MobileNetV2"])
def test_every_builder_builds_the_same_model_in_keras3(name):
    """``keras="keras"``: a Keras 3 model of the same architecture (params, output)."""
    from pipeline import keras_api
    legacy = models.build(name, (32, 32, 3), 10)
    modern = models.build(name, (32, 32, 3), 10, keras="keras")
    assert not keras_api.is_keras3(legacy) and keras_api.is_keras3(modern)
    assert modern.count_params() == legacy.count_params()
    assert modern.output_shape == legacy.output_shape == (None, 10)
    assert modern.layers[-1].name == "predictions"
    if name.islower():  # our own builders: the same layer names too
        assert [l.name for l in modern.layers] == [l.name for l in legacy.layers]


def test_a_bad_keras_name_is_one_clear_error():
    from pipeline.errors import UnsupportedModelError
    with pytest.raises(UnsupportedModelError, match=r"one of \('tf_keras', 'keras'\)"):
        models.build("vgg", (32, 32, 3), 10, keras="keras2")
