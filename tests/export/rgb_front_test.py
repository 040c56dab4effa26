"""The RGB front: gray models take RGB frames, colour maps to BT.601 gray (both Kerases)."""
import numpy as np
import pytest
import tensorflow as tf

from pipeline.export import rgb_front


def test_rgb_front_on_a_gray_model_gives_the_same_outputs(tiny_classifier_of_each, tiny_data):
    tiny_classifier = tiny_classifier_of_each
    images = next(iter(tiny_data.val))[0].numpy()
    front = rgb_front.with_rgb_front(tiny_classifier)
    assert front.input_shape == (1, 28, 28, 3)
    got = np.concatenate([front(rgb_front.to_rgb(images[i:i + 1])) for i in range(8)])
    np.testing.assert_allclose(got, tiny_classifier(images[:8]), rtol=0, atol=1e-6)


def test_rgb_front_maps_colour_to_bt601_gray(K):
    inputs = K.Input((4, 4, 1))
    identity = K.Model(inputs, K.layers.Activation("linear")(inputs))
    pixel = np.array([0.2, 0.6, 1.0], np.float32)
    out = rgb_front.with_rgb_front(identity)(np.broadcast_to(pixel, (1, 4, 4, 3)))
    expected = tf.image.rgb_to_grayscale(pixel[None, None, None]).numpy().item()
    assert float(out[0, 0, 0, 0]) == pytest.approx(expected, rel=2e-4)
    assert rgb_front.GRAY_WEIGHTS.sum() == pytest.approx(1.0)


def test_an_rgb_model_keeps_its_input_channels(K):
    inputs = K.Input((4, 4, 3))
    front = rgb_front.with_rgb_front(K.Model(inputs, K.layers.Activation("linear")(inputs)))
    assert "rgb_to_gray" not in [layer.name for layer in front.layers]
    rgb = np.random.rand(1, 4, 4, 3).astype(np.float32)
    np.testing.assert_array_equal(front(rgb), rgb)
    assert rgb_front.to_rgb(rgb).shape == rgb.shape  # RGB batches pass through


def test_rgb_front_rejects_other_channel_counts(K):
    inputs = K.Input((4, 4, 2))
    with pytest.raises(rgb_front.RgbFrontError, match="2-channel"):
        rgb_front.with_rgb_front(K.Model(inputs, inputs))
