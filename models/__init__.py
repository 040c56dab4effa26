"""Model builders by name: ``models.build("vgg", (28, 28, 1), 10)``.

Names: ``vgg`` (the default), ``resnet20``, ``resnet56``, ``mobilenetv2`` and
every ``tf_keras.applications`` constructor (``MobileNetV2``, ``ResNet50``...,
built with ``weights=None``). Every model ends in a softmax ``Dense`` named
``predictions``.

Example:
  >>> import pipeline, models
  >>> model = models.build("vgg", (28, 28, 1), 10, width=0.5)
  >>> model.output_shape
  (None, 10)
"""
import inspect

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
from models import applications, mobilenetv2, resnet, vgg  # noqa: F401  (registration)
from models.registry import add, get, names, register


def build(name: str, input_shape, num_classes: int, **options):
    """Builds the model registered as ``name``.

    Args:
      name: a name from :func:`names`.
      input_shape: ``(height, width, channels)``.
      num_classes: size of the softmax output.
      **options: builder options, e.g. ``width`` (channel multiplier) and
        ``dropout``.

    Returns:
      An untrained functional ``tf_keras.Model``.

    Raises:
      RegistryError: unknown name (the message lists the valid ones).
      ValueError: an option the builder does not take, or a bad value.
    """
    builder = get(name)
    shape = tuple(int(d) for d in input_shape)
    try:
        inspect.signature(builder).bind(shape, int(num_classes), **options)
    except TypeError as e:
        raise ValueError(f"model '{name}' does not take options {sorted(options)}: {e}") from e
    return builder(shape, int(num_classes), **options)


__all__ = ["build", "names", "register", "add", "get"]
