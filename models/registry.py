"""The model registry: builders looked up by name.

A builder is ``fn(input_shape, num_classes, **options) -> tf_keras.Model``.
Register one with :func:`register`; the built-in ones live in
:mod:`models.vgg`, :mod:`models.resnet`, :mod:`models.mobilenetv2` and, for
every ``tf_keras.applications`` constructor, :mod:`models.applications`.
"""
from __future__ import annotations

from typing import Callable

from pipeline.errors import RegistryError

Builder = Callable[..., object]
_BUILDERS: dict[str, Builder] = {}


def register(name: str):
    """Decorator registering a model builder under ``name``.

    Raises:
      RegistryError: ``name`` is already registered.

    Example:
      >>> @register("tiny")
      ... def tiny(input_shape, num_classes, width=1.0, dropout=0.0):
      ...     ...
    """
    def decorate(fn: Builder) -> Builder:
        add(name, fn)
        return fn
    return decorate


def add(name: str, fn: Builder) -> None:
    """Registers ``fn`` under ``name`` (the non-decorator form of :func:`register`)."""
    if name in _BUILDERS:
        raise RegistryError(f"model '{name}' is already registered (by "
                            f"{getattr(_BUILDERS[name], '__module__', '?')}); pick another name")
    _BUILDERS[name] = fn


def get(name: str) -> Builder:
    """The builder registered as ``name``.

    Raises:
      RegistryError: unknown name; the message lists the valid ones.
    """
    if name not in _BUILDERS:
        raise RegistryError(f"unknown model '{name}'; choose one of: " + ", ".join(names()))
    return _BUILDERS[name]


def names() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(_BUILDERS)
