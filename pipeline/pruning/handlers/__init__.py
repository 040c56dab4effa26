"""Channel handlers, one per Keras layer class, in an explicit registry.

Importing this package registers the built-in handlers. Public helpers for
your own layers: :func:`register_handler`, :func:`per_channel`,
:func:`passthrough`, :func:`opaque`.
"""
from pipeline.pruning.handlers import channelwise, conv, merge, reshape, tfop  # noqa: F401  (registration)
from pipeline.pruning.handlers.base import (Handler, WeightAxis, find_handler, get_handler,
                                    register_handler, registered_classes)
from pipeline.pruning.handlers.channelwise import OpaqueHandler, passthrough, per_channel
from pipeline.pruning.handlers.merge import CouplerHandler

# ConvNeXt's LayerScale multiplies each channel by gamma; its config stores the width.
from tf_keras.src.applications import convnext as _convnext

register_handler(_convnext.LayerScale, per_channel(("gamma",), config_key="projection_dim"))


def opaque() -> Handler:
    """A handler that keeps a layer's channels whole (for layers that mix channels)."""
    return OpaqueHandler()


def coupler() -> Handler:
    """A handler for a custom elementwise layer over several same-width inputs."""
    return CouplerHandler()


__all__ = ["Handler", "WeightAxis", "register_handler", "find_handler", "get_handler",
           "registered_classes", "passthrough", "per_channel", "opaque", "coupler"]
