"""The Keras 3 family (``import keras``; ``tf.keras`` since TF 2.16): graph walk and rebuild.

Keras 3's functional graph holds layers and, for ``keras.ops`` calls on
symbolic tensors (``x * 0.5``, ``keras.ops.relu(x)``), bare operations such as
``keras.src.ops.numpy.Multiply``, where tf_keras had TFOpLambda layers. Both
are nodes here; the handler registry decides which operations pass channels
through (:mod:`pipeline.pruning.handlers.ops`) and keeps every other one whole.
Private pieces used: ``_nodes_by_depth``, ``Node.arguments``,
``_keras_history``, a built Sequential's ``_functional`` and the operation
classes under ``keras.src.ops``; all of it stays in this module.
"""
from __future__ import annotations

import importlib
import inspect

import keras
from keras.src.applications import convnext as _convnext
from keras.src.applications import inception_resnet_v2 as _inception_resnet_v2
from keras.src.ops import operation as _operation

from pipeline.errors import UnsupportedModelError
from pipeline.pruning.families.base import Call, Family

_PRIVATE_CLASSES = {
    "LayerScale": _convnext.LayerScale,
    "CustomScaleLayer": _inception_resnet_v2.CustomScaleLayer,
}
# Modules (under keras.src) whose Operation classes can appear as nodes of a functional graph.
OP_MODULES = ("ops.core", "ops.image", "ops.linalg", "ops.math", "ops.nn", "ops.numpy",
              "ops.einops", "activations.activations")


class Keras3(Family):
    """Keras 3 models on the TensorFlow backend (the graph walk itself needs no backend)."""

    name = "keras 3"
    package = "keras"

    def version(self) -> str:
        return keras.__version__

    def owns(self, obj) -> bool:
        return isinstance(obj, _operation.Operation)

    def check_model(self, model) -> None:
        if isinstance(model, keras.Sequential):
            if getattr(model, "_functional", None) is None:
                raise UnsupportedModelError(
                    f"Sequential model '{model.name}' is not built: start it with "
                    "keras.Input(shape=...) or call model.build((None, ...)) before pruning")
            return
        if not hasattr(model, "_nodes_by_depth"):
            raise UnsupportedModelError(
                f"model '{model.name}' is a subclassed Keras 3 model ({type(model).__name__}); "
                "only functional and Sequential models have a graph to prune: rewrite it with "
                "the functional API (keras.Model(inputs, outputs))")

    def is_submodel(self, layer) -> bool:
        return isinstance(layer, keras.Model)

    def calls(self, model):
        graph = _functional(model)
        by_depth = graph._nodes_by_depth
        for depth in sorted(by_depth, reverse=True):  # depth counts from the outputs
            for node in by_depth[depth]:
                if node.is_input:
                    continue
                flat = keras.tree.flatten((node.arguments.args, node.arguments.kwargs))
                constants = tuple(a for a in flat if not isinstance(a, keras.KerasTensor))
                yield Call(node.operation, tuple(node.input_tensors), tuple(node.outputs),
                           constants)

    def inputs(self, model) -> list:
        return list(keras.tree.flatten(_functional(model).inputs))

    def outputs(self, model) -> list:
        return list(keras.tree.flatten(_functional(model).outputs))

    def producer(self, tensor):
        return tensor._keras_history.operation

    def shape(self, tensor) -> tuple:
        return tuple(tensor.shape)[1:]

    def resolve(self, name: str) -> type | None:
        if name.startswith("op:"):
            module, _, cls = name[3:].rpartition(".")
            found = getattr(importlib.import_module(f"keras.src.{module}"), cls, None)
        else:
            found = _PRIVATE_CLASSES.get(name) or getattr(keras.layers, name, None)
        return found if isinstance(found, type) else None

    def rebuild_from_config(self, model, config):
        custom = {}
        for layer in self.leaf_layers(model):
            cls = type(layer)
            if not cls.__module__.startswith("keras."):
                custom[cls.__name__] = cls
                custom[keras.saving.get_registered_name(cls)] = cls
        with keras.saving.custom_object_scope(custom):
            return type(model).from_config(config)

    def drop_build_state(self, config, nested: bool = False) -> None:
        if nested:
            config.pop("build_input_shape", None)  # its InputLayer entry holds the new width
        for entry in config.get("layers", ()):
            entry.pop("build_config", None)
            if "layers" in entry.get("config", {}):
                self.drop_build_state(entry["config"], nested=True)

    def narrow_input(self, entry, width) -> None:
        shape = entry["config"].get("batch_shape")
        if entry.get("class_name") == "InputLayer" and shape:
            entry["config"]["batch_shape"] = tuple(shape[:-1]) + (width,)

    def assign(self, pairs) -> None:
        for variable, value in pairs:
            variable.assign(value)

    def one_layer_model(self, layer, input_shape):
        inputs = keras.Input(tuple(input_shape), batch_size=1)
        return keras.Model(inputs, layer(inputs))


def operation_classes() -> list[type]:
    """Every bare Operation class of :data:`OP_MODULES` (the nodes ``keras.ops`` calls make)."""
    found = []
    for name in OP_MODULES:
        module = importlib.import_module(f"keras.src.{name}")
        for cls in vars(module).values():
            if (inspect.isclass(cls) and issubclass(cls, _operation.Operation)
                    and cls.__module__ == module.__name__):
                found.append(cls)
    return found


def _functional(model):
    return model._functional if isinstance(model, keras.Sequential) else model


FAMILY = Keras3()
