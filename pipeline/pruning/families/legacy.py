"""The tf_keras (Keras 2) family: the only module touching tf_keras' private graph API.

Private pieces used: the functional graph (``_nodes_by_depth``, node call
arguments, ``_keras_history``) and the layer classes ``tf_keras.layers`` does
not export but tf_keras' own models use (ConvNeXt's LayerScale,
InceptionResNetV2's CustomScaleLayer, TFOpLambda, SlicingOpLambda). Keras warns
that this API may change; keeping every touch here means one module to fix.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras
from tf_keras.src.applications import convnext as _convnext
from tf_keras.src.applications import inception_resnet_v2 as _inception_resnet_v2
from tf_keras.src.layers.core import tf_op_layer as _tf_op_layer

from pipeline.errors import UnsupportedModelError
from pipeline.pruning.families.base import Call, Family

# Handler declarations name these; tf_keras.layers does not export them.
_PRIVATE_CLASSES = {
    "LayerScale": _convnext.LayerScale,  # ConvNeXt: multiplies each channel by gamma
    "CustomScaleLayer": _inception_resnet_v2.CustomScaleLayer,  # x + scale * r
    "TFOpLambda": _tf_op_layer.TFOpLambda,  # a TensorFlow op called on Keras tensors
    "SlicingOpLambda": _tf_op_layer.SlicingOpLambda,  # ``x[..., 1:3]`` on a Keras tensor
}


class TfKeras(Family):
    """tf_keras 2.x models (``import tf_keras``, or ``tf.keras`` with TF_USE_LEGACY_KERAS=1)."""

    name = "tf_keras"
    package = "tf_keras"

    def version(self) -> str:
        return tf_keras.__version__

    def owns(self, obj) -> bool:
        return isinstance(obj, tf_keras.layers.Layer)

    def check_model(self, model) -> None:
        if not getattr(model, "_is_graph_network", False):
            if isinstance(model, tf_keras.Sequential):
                raise UnsupportedModelError(
                    f"Sequential model '{model.name}' is not built: give its first layer an "
                    "input_shape or call model.build((None, ...)) before pruning")
            raise UnsupportedModelError(
                f"model '{model.name}' is a subclassed model ({type(model).__name__}); only "
                "functional and Sequential models have a graph to prune: rewrite it with the "
                "functional API")

    def is_submodel(self, layer) -> bool:
        return isinstance(layer, tf_keras.Model)

    def calls(self, model):
        by_depth = model._nodes_by_depth
        for depth in sorted(by_depth, reverse=True):  # depth counts from the outputs
            for node in by_depth[depth]:
                if node.is_input:
                    continue
                constants = tuple(a for a in node._flat_arguments
                                  if not hasattr(a, "_keras_history"))
                yield Call(node.layer, tuple(node.keras_inputs),
                           tuple(tf.nest.flatten(node.outputs)), constants)

    def inputs(self, model) -> list:
        return list(model.inputs)

    def outputs(self, model) -> list:
        return list(model.outputs)

    def producer(self, tensor):
        return tensor._keras_history.layer

    def shape(self, tensor) -> tuple:
        shape = tensor.shape
        if shape.rank is None:
            return ()
        return tuple(shape.as_list()[1:])

    def resolve(self, name: str) -> type | None:
        return _PRIVATE_CLASSES.get(name) or _public_layer(tf_keras.layers, name)

    def rebuild_from_config(self, model, config):
        custom_objects = {type(l).__name__: type(l) for l in self.leaf_layers(model)}
        return type(model).from_config(config, custom_objects=custom_objects)

    def drop_build_state(self, config) -> None:
        for entry in config.get("layers", ()):
            entry.pop("build_config", None)
            if "layers" in entry.get("config", {}):
                self.drop_build_state(entry["config"])

    def narrow_input(self, entry, width) -> None:
        shape = entry["config"].get("batch_input_shape")
        if entry.get("class_name") == "InputLayer" and shape:
            entry["config"]["batch_input_shape"] = tuple(shape[:-1]) + (width,)

    def assign(self, pairs) -> None:
        tf_keras.backend.batch_set_value(list(pairs))

    def one_layer_model(self, layer, input_shape):
        inputs = tf_keras.Input(tuple(input_shape), batch_size=1)
        return tf_keras.Model(inputs, layer(inputs))


def _public_layer(namespace, name):
    cls = getattr(namespace, name, None) if not name.startswith("op:") else None
    return cls if isinstance(cls, type) else None


FAMILY = TfKeras()
