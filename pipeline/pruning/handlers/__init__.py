"""Channel handlers, one per Keras layer class, in an explicit registry.

Importing this package registers the built-in handlers. Public helpers for
your own layers: :func:`register_handler`, :func:`per_channel`,
:func:`passthrough`, :func:`opaque`.
"""
from pipeline.pruning.handlers import channelwise, conv, merge, ops, reshape  # noqa: F401  (registration)
from pipeline.pruning.handlers.base import (Handler, SparseKernel, WeightAxis, find_handler,
                                            get_handler, register_handler, registered_classes,
                                            sparse_kernel)
from pipeline.pruning.handlers.channelwise import OpaqueHandler, passthrough, per_channel
from pipeline.pruning.handlers.merge import CouplerHandler


def opaque() -> Handler:
    """A handler that keeps a layer's channels whole (for layers that mix channels)."""
    return OpaqueHandler()


def coupler() -> Handler:
    """A handler for a custom elementwise layer over several same-width inputs."""
    return CouplerHandler()


__all__ = ["Handler", "SparseKernel", "WeightAxis", "register_handler", "find_handler",
           "get_handler", "registered_classes", "sparse_kernel", "passthrough", "per_channel",
           "opaque", "coupler"]
