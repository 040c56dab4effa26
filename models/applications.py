"""Every ``tf_keras.applications`` constructor as a registered builder.

Registered under its own CamelCase name (``MobileNetV2``, ``ResNet50``...)
and built, in the Keras the builder is given (``K=tf_keras`` or ``K=keras``:
the constructor of that name in ``K.applications``), untrained
(``weights=None``, nothing can be downloaded). Built-in
input rescaling (``include_preprocessing``) is switched off because the
pipeline feeds images scaled to [0, 1].
"""
from __future__ import annotations

import inspect
from types import ModuleType

import tf_keras
from absl import logging

from models.registry import add


def constructors() -> dict[str, object]:
    """CamelCase public functions of ``tf_keras.applications`` taking weights and classes."""
    found = {}
    for name, value in vars(tf_keras.applications).items():
        if name[:1].isupper() and inspect.isfunction(value):
            params = inspect.signature(value).parameters
            if "weights" in params and "classes" in params:
                found[name] = value
    return dict(sorted(found.items()))


def _build(constructor, input_shape, num_classes, width: float = 1.0, dropout: float = 0.0):
    """Calls ``constructor`` untrained; ``width`` maps to ``alpha`` where it exists.

    Raises:
      ValueError: ``width`` != 1 for a constructor without ``alpha``.
    """
    params = inspect.signature(constructor).parameters
    kwargs = dict(weights=None, input_shape=tuple(input_shape), classes=int(num_classes))
    if "include_preprocessing" in params:
        kwargs["include_preprocessing"] = False
    if width != 1.0:
        if "alpha" not in params:
            raise ValueError(f"{constructor.__name__} has no width multiplier (alpha); "
                             "leave model.width at 1.0")
        kwargs["alpha"] = float(width)
    dropout_key = next((k for k in ("dropout_rate", "dropout") if k in params), None)
    if dropout_key:
        kwargs[dropout_key] = float(dropout)
    elif dropout:
        logging.warning("%s takes no dropout option; model.dropout=%s is ignored",
                        constructor.__name__, dropout)
    return constructor(**kwargs)


def _builder(constructor):
    name = constructor.__name__

    def build(input_shape, num_classes, width: float = 1.0, dropout: float = 0.0, *,
              K: ModuleType = tf_keras):
        own = constructor if K is tf_keras else getattr(K.applications, name, None)
        if own is None:
            raise ValueError(f"{K.__name__} {K.__version__} has no applications.{name}; its "
                             f"constructors: {', '.join(sorted(_public(K.applications)))}")
        return _build(own, input_shape, num_classes, width, dropout)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{name} of tf_keras.applications (or K.applications), untrained."
    return build


def _public(module) -> list[str]:
    return [n for n, v in vars(module).items() if n[:1].isupper() and callable(v)]


for _name, _constructor in constructors().items():
    add(_name, _builder(_constructor))
