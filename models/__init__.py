"""Model builders by name: ``models.build("vgg", (28, 28, 1), 10)``.

Names: ``vgg`` (the default), ``resnet20``, ``resnet56``, ``mobilenetv2`` and
every ``tf_keras.applications`` constructor (``MobileNetV2``, ``ResNet50``...,
built with ``weights=None``). ``keras="keras"`` builds the same architecture in
Keras 3 (same layer names and parameter count for the own builders; the
applications come from ``keras.applications``, which lacks RegNet and
ResNetRS). The own builders end in a softmax ``Dense`` named ``predictions``;
an application ends as its constructor makes it (most in that same layer).

Example:
  >>> import pipeline, models
  >>> model = models.build("vgg", (28, 28, 1), 10, width=0.5)
  >>> model.output_shape
  (None, 10)
  >>> models.build("vgg", (28, 28, 1), 10, keras="keras").output_shape  # in Keras 3
  (None, 10)
"""
import inspect

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
from models import applications, mobilenetv2, resnet, vgg  # noqa: F401  (registration)
from models.registry import add, get, names, register
from pipeline import keras_api


def build(name: str, input_shape, num_classes: int, keras: str = "tf_keras", **options):
    """Builds the model registered as ``name``.

    Args:
      name: a name from :func:`names`.
      input_shape: ``(height, width, channels)``.
      num_classes: size of the softmax output.
      keras: the Keras to build it in: ``"tf_keras"`` (Keras 2) or ``"keras"``
        (Keras 3); the same layers, names and parameter count either way.
      **options: builder options, e.g. ``width`` (channel multiplier) and
        ``dropout``.

    Returns:
      An untrained functional model of that Keras.

    Raises:
      RegistryError: unknown name (the message lists the valid ones).
      ValueError: an option the builder does not take, or a bad value.
    """
    builder = get(name)
    K = keras_api.named(keras)  # UnsupportedModelError: another name
    shape = tuple(int(d) for d in input_shape)
    signature = inspect.signature(builder)
    try:
        signature.bind(shape, int(num_classes), **options)
    except TypeError as e:
        raise ValueError(f"model '{name}' does not take options {sorted(options)}: {e}") from e
    if "K" in signature.parameters:
        return builder(shape, int(num_classes), **options, K=K)
    if K.__name__ != "tf_keras":
        raise ValueError(f"model '{name}' builds tf_keras models only (its builder takes no "
                         "K); set model.keras='tf_keras'")
    return builder(shape, int(num_classes), **options)


__all__ = ["build", "names", "register", "add", "get"]
