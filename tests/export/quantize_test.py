"""Full-integer quantization: input quantization, int8 agreement with the float model."""
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from pipeline.export.rgb_front import with_rgb_front
from pipeline.export import quantize
from pipeline.export import parity as verify


def representative(datasets, count=100):
    def generate():
        for image, _ in datasets.calibration.take(count):
            yield [np.repeat(image.numpy()[None], 3, axis=-1)]
    return generate


@pytest.mark.parametrize("input_type,dtype,zero_point", [("uint8", np.uint8, 0),
                                                         ("int8", np.int8, -128)])
def test_int8_agrees_with_keras(tiny_classifier, tiny_data, tmp_path, input_type, dtype,
                                zero_point):
    raw = quantize.convert_int8(with_rgb_front(tiny_classifier),
                                representative(tiny_data), input_type)
    path = tmp_path / "q.tflite"
    path.write_bytes(raw)
    interpreter = Interpreter(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == dtype and out["dtype"] == dtype
    scale, zp = inp["quantization"]
    assert scale == pytest.approx(1 / 255, rel=1e-3) and zp == zero_point
    images = np.concatenate([x.numpy() for x, _ in tiny_data.val])  # 500: int8 flips a few near-ties
    result = verify.verify_parity(str(path), tiny_classifier, images, "q", min_agreement=0.99)
    assert result["agreement"] >= 0.99 and result["input_dtype"] == input_type
    assert result["max_abs_diff"] < 0.1  # probabilities, dequantized
    weights = [d for d in interpreter.get_tensor_details() if len(d["shape"]) == 4
               and d["dtype"] == np.int8 and "Conv2D" in d["name"]]
    assert weights  # int8 conv weights, not float


def test_uncovered_input_range_is_refused(tiny_classifier):
    def dim():  # calibration images in [0, 0.5]: the uint8 input would be mis-scaled
        for _ in range(10):
            yield [np.random.uniform(0, 0.5, (1, 28, 28, 3)).astype(np.float32)]
    with pytest.raises(quantize.QuantizeError, match="do not span"):
        quantize.convert_int8(with_rgb_front(tiny_classifier), dim, "uint8")


def test_unknown_input_type(tiny_classifier):
    with pytest.raises(quantize.QuantizeError, match="int8_input"):
        quantize.convert_int8(tiny_classifier, lambda: iter(()), "int16")
