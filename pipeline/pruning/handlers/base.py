"""The handler interface and the registry that maps layer classes to handlers.

A handler describes one Keras layer class to the pruner, in three parts:

* ``trace``: how channel ids flow from the layer's inputs to its outputs. A
  producer (Conv2D, Dense...) mints fresh ids; a per-channel layer passes them
  through; a coupler (Add) unifies its inputs; Concatenate joins them.
* ``weight_axes``: which axis of which weight carries which channel. The same
  declaration drives importance scoring and the physical slicing at rebuild.
* ``edit_config`` and ``macs``: the narrower layer's config, and its
  multiply-accumulates for given channel counts.
* ``sparse``: a :class:`SparseKernel` saying which weight is the layer's
  kernel for TFLite's sparse formats (2:4, 1x4 blocks), or None.

Channel ids are integer numpy arrays, one entry per position of a tensor's
last (channel) axis; a position may repeat an id (Flatten tiles them,
depth_multiplier repeats them). The tracer passed to ``trace`` offers
``fresh(n, owner)``, ``fresh_blocked(n)``, ``unify(a, b)`` and ``block(ids)``.

Register a handler for your own layer with :func:`register_handler`; most
custom layers fit :func:`pipeline.pruning.handlers.per_channel` or
:func:`pipeline.pruning.handlers.passthrough`.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable

import numpy as np

from pipeline.errors import RegistryError, UnsupportedLayerError


@dataclasses.dataclass(frozen=True, eq=False)
class WeightAxis:
    """One axis of one weight whose entries belong to channels.

    Attributes:
      weight: the weight's short name (``"kernel"``, ``"gamma"``...).
      axis: the axis of that weight indexed by ``ids``.
      ids: channel id of each entry along ``axis``.
      role: ``"out"`` (a filter the layer produces), ``"in"`` (a consumer's
        input slice) or ``"channel"`` (a per-channel parameter).
      scored: whether importance criteria read it (statistics such as BN's
        moving mean are sliced but never scored).
      tags: free labels criteria may select on (``"bn_scale"`` for
        network slimming).
    """

    weight: str
    axis: int
    ids: np.ndarray
    role: str
    scored: bool = True
    tags: frozenset = frozenset()

    def with_ids(self, ids: np.ndarray) -> "WeightAxis":
        return dataclasses.replace(self, ids=ids)


@dataclasses.dataclass(frozen=True)
class SparseKernel:
    """A layer's kernel as TF-MOT's sparse masks and TFLite's sparse formats see it.

    Both patterns group weights along the input-channel axis (the last axis of
    TFLite's OHWI conv and (out, in) fully-connected layouts). The kernel's
    output channels are its last axis.

    Attributes:
      weight: the kernel's short name (``"kernel"``, ``"pointwise_kernel"``).
      in_axis: the axis of the Keras kernel that holds the input channels
        (of one group, in a grouped conv).
      two_of_four: it can be trained 2:4 along ``in_axis`` and TFLite stores
        that axis last (a CONV_2D or FULLY_CONNECTED filter), so the 2:4
        groups survive conversion.
      block_1x4: it becomes a FULLY_CONNECTED op, whose float kernel TFLite
        runs block-sparse with 1x4 blocks.
      reason: why neither pattern applies, when that is the layer's nature
        (a depthwise conv has one input channel per filter); empty otherwise.
    """

    weight: str = "kernel"
    in_axis: int = -2
    two_of_four: bool = True
    block_1x4: bool = False
    reason: str = ""


class Handler:
    """Default behaviour: no weights, no MACs, config unchanged, no sparse kernel.

    Args:
      sparse: the layer's :class:`SparseKernel`, or None when sparse formats
        do not apply to it.
    """

    sparse: SparseKernel | None = None

    def __init__(self, *, sparse: SparseKernel | None = None):
        self.sparse = sparse

    def trace(self, node, ins: list[np.ndarray], tracer) -> list[np.ndarray]:
        raise NotImplementedError

    def weight_axes(self, node, ins, outs) -> list[WeightAxis]:
        del node, ins, outs
        return []

    def edit_config(self, config: dict, node, in_counts, out_counts) -> None:
        """Edits ``config`` in place for the kept channel counts."""
        del config, node, in_counts, out_counts

    def macs(self, node, n_in: int, n_out: int) -> int:
        """Multiply-accumulates of one call with ``n_in``/``n_out`` channels."""
        del node, n_in, n_out
        return 0


_REGISTRY: dict[type, Handler] = {}
# Handlers declared by class name, for every Keras family (see :func:`declare`).
_DECLARED: list[tuple[tuple[str, ...], Handler]] = []
_RESOLVERS: list[Callable[[str], type | None]] = []


def register_handler(layer_class: type, handler: Handler, *, replace: bool = False) -> None:
    """Registers ``handler`` for exactly ``layer_class`` (subclasses are not implied).

    Args:
      layer_class: a layer class of either Keras (tf_keras or Keras 3).
      handler: a :class:`Handler` instance.
      replace: allow overriding an existing registration (tests, plug-ins).

    Raises:
      RegistryError: the class already has a handler and ``replace`` is False.

    Example:
      >>> import pipeline, keras
      >>> class Scale(keras.layers.Layer): ...
      >>> pipeline.register_handler(Scale, pipeline.pruning.handlers.per_channel(("gamma",)))
    """
    if not isinstance(handler, Handler):
        raise RegistryError(f"handler for {layer_class.__name__} must be a Handler, got "
                            f"{type(handler).__name__}")
    if layer_class in _REGISTRY and not replace:
        raise RegistryError(
            f"{layer_class.__module__}.{layer_class.__name__} already has a handler "
            f"({type(_REGISTRY[layer_class]).__name__}); pass replace=True to override it")
    _REGISTRY[layer_class] = handler


def declare(names: Iterable[str], handler: Handler) -> None:
    """Registers ``handler`` for the classes called ``names`` in every Keras family.

    A handler describes a layer's channels, not which Keras it came from: one
    declaration covers ``tf_keras.layers.Conv2D`` and ``keras.layers.Conv2D``.
    A name is a public layer name (``"Conv2D"``), a private class a family
    knows (``"LayerScale"``), or a Keras 3 operation by its module in Keras
    3's source tree and its class (``"op:ops.numpy.Add"``).
    Families loaded later (Keras 3 loads on first use) get it then.
    """
    names = tuple(names)
    _DECLARED.append((names, handler))
    for resolve in _RESOLVERS:
        _register_resolved(resolve, names, handler)


def add_family(resolve: Callable[[str], type | None]) -> None:
    """Registers every declared handler for the classes ``resolve`` gives their names."""
    _RESOLVERS.append(resolve)
    for names, handler in _DECLARED:
        _register_resolved(resolve, names, handler)


def declared_names() -> list[str]:
    """Every name a handler was declared for, in declaration order."""
    return [name for names, _ in _DECLARED for name in names]


def _register_resolved(resolve, names, handler):
    for name in names:
        cls = resolve(name)
        if cls is not None and cls not in _REGISTRY:
            _REGISTRY[cls] = handler


def register_all(classes: Iterable[type], handler: Handler) -> None:
    for cls in classes:
        register_handler(cls, handler)


def find_handler(layer_class: type) -> Handler | None:
    """The handler registered for exactly ``layer_class``, or None."""
    _load_family_of(layer_class)
    return _REGISTRY.get(layer_class)


def get_handler(node) -> Handler:
    """The handler for a graph node's layer.

    Raises:
      UnsupportedLayerError: naming the layer, its class and the two fixes.
    """
    handler = find_handler(type(node.layer))
    if handler is None:
        cls = type(node.layer)
        raise UnsupportedLayerError(
            f"layer '{node.name}' has class {cls.__module__}.{cls.__name__}, which has no "
            "channel handler: register one with pipeline.register_handler("
            f"{cls.__name__}, pipeline.pruning.handlers.per_channel(...) or passthrough()), or keep the "
            f"layer and its channels intact with ignore=['{node.name}']")
    return handler


def registered_classes() -> list[type]:
    return list(_REGISTRY)


def sparse_kernel(layer) -> SparseKernel | None:
    """The :class:`SparseKernel` the registry declares for ``layer``'s exact class, or None.

    Example:
      >>> sparse_kernel(tf_keras.layers.Dense(8))
      SparseKernel(weight='kernel', in_axis=-2, two_of_four=True, block_1x4=True, reason='')
    """
    handler = find_handler(type(layer))
    return handler.sparse if handler is not None else None


def _load_family_of(layer_class: type) -> None:
    if layer_class in _REGISTRY:
        return
    from pipeline.pruning import families  # a Keras 3 class loads its family on first sight
    families.for_class(layer_class)


def weight_names(layer) -> list[str]:
    """The names handlers give ``layer.weights``, in order (``["kernel", "bias"]``).

    A weight's own short name, except for a Keras 3 variable made without a
    name (``variable_39``, as ConvNeXt's LayerScale makes its gamma): then the
    layer attribute holding it (``gamma``), which is what both Kerases' code
    calls it.
    """
    weights = list(getattr(layer, "weights", ()))
    attributes = None
    names = []
    for w in weights:
        name = short_name(w)
        if re.fullmatch(r"variable(_\d+)?", name):
            if attributes is None:
                attributes = {id(v): k for k, v in vars(layer).items() if hasattr(v, "assign")}
            name = attributes.get(id(w), name)
        names.append(name)
    return names


def short_name(variable) -> str:
    """A weight's name without its layer scope and ``:0`` suffix (``"kernel"``)."""
    return variable.name.split("/")[-1].split(":")[0]


def channels(shape: tuple) -> int:
    """Length of the channel (last) axis of a static shape; 1 for scalars."""
    if not shape:
        return 1
    if shape[-1] is None:
        raise UnsupportedLayerError(f"a tensor of shape {shape} has an unknown channel count")
    return int(shape[-1])


def spatial(shape: tuple) -> int:
    """Product of the non-channel axes of a static shape (unknown axes count as 1)."""
    size = 1
    for dim in shape[:-1]:
        size *= int(dim) if dim is not None else 1
    return size
