"""The weight kernels read back from a written file, through the ops in front of them."""
import numpy as np
import pytest

from pipeline.export import flatbuffer
from pipeline.export import variants


@pytest.fixture(scope="module")
def small():
    import tf_keras
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((8, 8, 3))
    x = tf_keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = tf_keras.layers.Flatten()(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(4, name="fc")(x))


@pytest.mark.parametrize("convert, dtype", [(variants.convert_fp32, np.float32),
                                            (variants.convert_fp16, np.float16)])
def test_kernels_are_the_stored_constants(small, tmp_path, convert, dtype):
    path = tmp_path / "m.tflite"
    path.write_bytes(convert(small, None))
    kernels = {k.op: k for k in flatbuffer.read_kernels(str(path))}
    assert set(kernels) == {"CONV_2D", "FULLY_CONNECTED"}
    conv = kernels["CONV_2D"].values  # TFLite stores O, H, W, I
    assert conv.dtype == dtype  # float16: the constant behind the DEQUANTIZE op
    expected = small.get_layer("conv").kernel.numpy().transpose(3, 0, 1, 2).astype(dtype)
    np.testing.assert_array_equal(conv, expected)
    fc = kernels["FULLY_CONNECTED"].values
    np.testing.assert_array_equal(fc, small.get_layer("fc").kernel.numpy().T.astype(dtype))
