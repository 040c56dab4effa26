"""The small interface behind which each Keras family (tf_keras, Keras 3) reads and rebuilds.

A family answers the few questions the graph walk and the rebuild ask of a
model: is this object yours, which layer calls does this (sub-)model hold and
in what order, what shape has this tensor, which class is called ``name``
here, how is a narrower model built from an edited config and how are weights
assigned. Everything else in :mod:`pipeline.pruning` works on the plain data
of :mod:`pipeline.pruning.graph` and never asks which Keras a model came from.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator


@dataclasses.dataclass(frozen=True)
class Call:
    """One call of one layer (or Keras 3 operation), as a family reads it.

    Attributes:
      layer: the layer or operation object.
      inputs: the Keras tensors it was called on, in call order.
      outputs: the Keras tensors it produced.
      constants: its non-tensor arguments, flattened (scalars, arrays, None).
    """

    layer: Any
    inputs: tuple
    outputs: tuple
    constants: tuple = ()


class Family:
    """One Keras family. Subclasses implement every method; none keeps state."""

    #: short name used in messages (``"tf_keras"``, ``"keras 3"``).
    name: str = ""
    #: the top-level package its classes live in (``"tf_keras"``, ``"keras"``).
    package: str = ""

    def version(self) -> str:
        """The installed version of this family's Keras."""
        raise NotImplementedError

    def owns(self, obj) -> bool:
        """Whether ``obj`` (a model or layer) is an instance of this family's classes."""
        raise NotImplementedError

    def check_model(self, model) -> None:
        """Raises UnsupportedModelError unless ``model`` is a built functional/Sequential."""
        raise NotImplementedError

    def is_submodel(self, layer) -> bool:
        raise NotImplementedError

    def calls(self, model) -> Iterator[Call]:
        """``model``'s layer calls, inputs before consumers, Input layers left out."""
        raise NotImplementedError

    def inputs(self, model) -> list:
        raise NotImplementedError

    def outputs(self, model) -> list:
        raise NotImplementedError

    def producer(self, tensor):
        """The layer that produced Keras tensor ``tensor``."""
        raise NotImplementedError

    def shape(self, tensor) -> tuple:
        """Static shape of ``tensor`` without the batch axis (``()`` if unknown rank)."""
        raise NotImplementedError

    def resolve(self, name: str) -> type | None:
        """The class this family calls ``name`` (a handler declaration's name), or None."""
        raise NotImplementedError

    def rebuild_from_config(self, model, config: dict):
        """A new model of ``model``'s class from the edited ``config``."""
        raise NotImplementedError

    def drop_build_state(self, config: dict) -> None:
        """Removes recorded input shapes so that layers build from the new graph's shapes."""
        raise NotImplementedError

    def narrow_input(self, entry: dict, width: int) -> None:
        """Sets the channel count of a sub-model's InputLayer config ``entry``."""
        raise NotImplementedError

    def assign(self, pairs) -> None:
        """Assigns ``(variable, numpy value)`` pairs."""
        raise NotImplementedError

    def leaf_layers(self, model):
        """Every layer of ``model`` that is not itself a model, descending into sub-models."""
        for layer in model.layers:
            if self.is_submodel(layer):
                yield from self.leaf_layers(layer)
            else:
                yield layer

    def one_layer_model(self, layer, input_shape: tuple):
        """A model of batch 1 calling ``layer`` on an input of ``input_shape`` (no batch axis)."""
        raise NotImplementedError
