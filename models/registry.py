"""The model registry: builders looked up by name.

A builder is ``fn(input_shape, num_classes, **options, K=tf_keras) -> K.Model``:
``K`` is the Keras package to build in (``tf_keras`` or ``keras``); a builder
without a ``K`` parameter builds tf_keras only. Register one with
:func:`register`; the built-in ones live in
:mod:`models.vgg`, :mod:`models.resnet`, :mod:`models.mobilenetv2` and, for
every ``tf_keras.applications`` constructor, :mod:`models.applications`.
"""
from __future__ import annotations

from typing import Callable

from pipeline.registry import Registry

Builder = Callable[..., object]
_BUILDERS: Registry[Builder] = Registry("model")


def register(name: str):
    """Decorator registering a model builder under ``name``.

    Raises:
      RegistryError: ``name`` is already registered.

    Example:
      >>> @register("tiny")
      ... def tiny(input_shape, num_classes, width=1.0, dropout=0.0):
      ...     ...
    """
    return _BUILDERS.register(name)


def add(name: str, fn: Builder) -> None:
    """Registers ``fn`` under ``name`` (the non-decorator form of :func:`register`)."""
    _BUILDERS.add(name, fn)


def get(name: str) -> Builder:
    """The builder registered as ``name``.

    Raises:
      RegistryError: unknown name; the message lists the valid ones.
    """
    return _BUILDERS.get(name)


def names() -> list[str]:
    """Every registered model name, sorted."""
    return _BUILDERS.names()
