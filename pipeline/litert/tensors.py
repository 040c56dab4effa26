"""A LiteRT interpreter's tensors in and out, each with its own quantization.

Float images go into an integer input with that tensor's scale and zero
point, and integer outputs come back as float32, so every caller (accuracy,
parity checks) feeds and reads any variant the same way.

Example:
  >>> (inp,) = interpreter.get_input_details()
  >>> interpreter.set_tensor(inp["index"], quantize_images(images, inp))
"""
from __future__ import annotations

import numpy as np


def quantize_images(images: np.ndarray, detail: dict) -> np.ndarray:
    """Float images -> the input tensor's dtype, with its own scale and zero point."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return images.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """An output tensor back to float32 with its scale and zero point (floats pass through)."""
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale
