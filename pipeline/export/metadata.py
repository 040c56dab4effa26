"""TFLite image-classifier metadata and the labels file packed into it.

The TFLite Task Library's ``ImageClassifier`` and Android Studio's ML Model
Binding read a 1xHxWx3 RGB input (float32 or uint8; see
:mod:`pipeline.export.rgb_front`), normalisation options for float inputs,
and the labels as a TENSOR_AXIS_LABELS associated file.

* :func:`add_metadata` writes the metadata with MediaPipe Tasks' writers
  (``mediapipe.tasks.python.metadata``: ``metadata_info`` builds the tensor
  metadata, ``MetadataPopulator`` packs it and the labels file; see
  :mod:`pipeline.export.mediapipe_metadata` for the one piece the pip wheel
  lacks). Normalisation, per the Task Library's and MediaPipe's
  convention ``(pixel - mean) / std`` on [0, 255] R, G, B pixels, per
  channel: float inputs take the model's input, so the mean and std of its
  preprocessing (:meth:`pipeline.data.preprocess.Preprocess.normalization`;
  ``unit``, the default: mean 0, std 255); uint8 inputs, whose quantization
  (scale 1/255, zero point 0) already maps pixels (the preprocessing runs in
  the graph, see :mod:`pipeline.export.rgb_front`), mean 0, std 1; int8
  inputs (q = pixel - 128) mean 128, std 1; MediaPipe and the Task Library
  accept only uint8 and float32 inputs, so an int8 model is for direct
  interpreter use.
* A model of several outputs (heads) gets one output entry per head, in the
  file's output order, found by the signature's names: the classifier (the
  ``classifier`` output) as above, with the labels; every other head a
  plain tensor entry named after its Keras output layer (``conv6-2``), with
  its shape in the description and no labels.
* :func:`read_metadata` reads it back with ``MetadataDisplayer``, and
  :func:`read_normalization` the input's mean and std, as a client applies them.

Example:
  >>> write_labels("out/labels.txt", ["cat", "dog"])
  >>> shipped = add_metadata(raw, "out/labels.txt", ModelInfo(name="pets"))
  >>> read_metadata("out/pets.tflite")["files"]["labels.txt"]
  'cat\\ndog\\n'
"""
from __future__ import annotations

import dataclasses
import json
import os

import flatbuffers
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from pipeline import atomic
from pipeline.errors import PruningError
from pipeline.export import mediapipe_metadata
from pipeline.litert import tensors

metadata_info, writer_utils, mp_metadata, metadata_fb = mediapipe_metadata.writers()

LABELS_FILE = "labels.txt"
# (mean, std) of the Task Library's (pixel - mean) / std, by input dtype name; a float
# input's comes from the model's preprocessing when one is given.
NORMALIZATION = {"float32": (0.0, 255.0), "uint8": (0.0, 1.0), "int8": (128.0, 1.0)}


class MetadataError(PruningError):
    """A model's metadata or labels file cannot be written or read."""


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The general metadata of a shipped model."""

    name: str
    description: str = ""
    version: str = "1"
    author: str = ""
    license: str = ""


def write_labels(path: str, class_names) -> str:
    """Writes one class name per line (atomically).

    Args:
      path: where the labels file goes.
      class_names: the class names, in the order of the model's outputs.

    Returns:
      ``path``.

    Raises:
      MetadataError: no names, or a name spans several lines.
    """
    names = [str(n) for n in class_names]
    if any("\n" in n for n in names) or not names:
        raise MetadataError(f"class names must be non-empty and one line each, got {names}",
                            argument="class_names")
    return atomic.write_text(path, "\n".join(names) + "\n")


def add_metadata(tflite: bytes, labels_path: str, info: ModelInfo, preprocess=None,
                 classifier: str = "") -> bytes:
    """The model with image-classifier metadata and ``labels_path`` packed in.

    Args:
      tflite: the converted model, with a 1xHxWx3 input.
      labels_path: the labels file (:func:`write_labels`).
      info: the :class:`ModelInfo`.
      preprocess: the model's :class:`pipeline.data.preprocess.Preprocess`,
        the normalisation of a float input (None: ``unit``, mean 0, std 255).
      classifier: a multi-head file's class-score output, by its signature name
        ('' for a file of one output).

    Returns:
      The model's bytes with the metadata.

    Raises:
      MetadataError: the input is not 1xHxWx3, its dtype has no normalisation
        rule, a multi-head file has no output called ``classifier``, or the
        writer fails.
    """
    interpreter = Interpreter(model_content=tflite)
    (detail,) = interpreter.get_input_details()
    shape, dtype = [int(d) for d in detail["shape"]], np.dtype(detail["dtype"]).name
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise MetadataError(f"{info.name}: input shape {shape} is not 1xHxWx3; export the "
                            "model through pipeline.export.rgb_front.with_rgb_front",
                            argument="tflite")
    if dtype not in NORMALIZATION:
        raise MetadataError(f"{info.name}: input dtype {dtype} has no normalisation rule; "
                            f"expected one of {sorted(NORMALIZATION)}", argument="tflite")
    mean, std = ([m] for m in NORMALIZATION[dtype])
    if dtype == "float32" and preprocess is not None:
        mean, std = preprocess.normalization(3)
        mean, std = (mean[:1], std[:1]) if len(set(mean)) == len(set(std)) == 1 else (mean, std)
    try:
        general = metadata_info.GeneralMd(name=info.name, version=info.version,
                                          description=info.description, author=info.author,
                                          licenses=info.license)
        image = metadata_info.InputImageTensorMd(
            name="image", description=f"RGB image, {shape[1]}x{shape[2]}, {dtype}",
            norm_mean=mean, norm_std=std, color_space_type=metadata_fb.ColorSpaceType.RGB,
            tensor_type=writer_utils.get_input_tensor_types(tflite)[0])
        outputs = _outputs_md(tflite, interpreter, labels_path, classifier, info.name)
        populator = mp_metadata.MetadataPopulator.with_model_buffer(bytearray(tflite))
        populator.load_metadata_buffer(_metadata_buffer(general, image, outputs))
        populator.load_associated_files([os.fspath(labels_path)])
        populator.populate()
        return bytes(populator.get_model_buffer())
    except (ValueError, RuntimeError, OSError) as e:
        raise MetadataError(f"{info.name}: writing TFLite metadata failed: {e}") from e


def _outputs_md(tflite: bytes, interpreter, labels_path: str, classifier: str,
                name: str) -> list:
    """One output entry per output of the file, in its order (see the module doc)."""
    types = writer_utils.get_output_tensor_types(tflite)
    details = interpreter.get_output_details()
    names = tensors.output_names(interpreter)
    heads = [names.get(int(d["index"]), d["name"]) for d in details]
    if len(details) > 1 and classifier not in heads:
        raise MetadataError(f"{name}: the file has {len(details)} outputs ({', '.join(heads)}) "
                            f"and none is the classifier {classifier!r}; pass "
                            "classifier=<one of those names>", argument="classifier")
    entries = []
    for detail, head, tensor_type in zip(details, heads, types):
        if len(details) == 1 or head == classifier:
            entries.append(metadata_info.ClassificationTensorMd(
                name="probability" if len(details) == 1 else head,
                description="Probabilities of the labels.",
                label_files=[metadata_info.LabelFileMd(labels_path)], tensor_type=tensor_type))
        else:
            shape = "x".join(str(int(d)) for d in detail["shape"])
            entries.append(metadata_info.TensorMd(
                name=head, description=f"Output '{head}' ({shape}) of the model's head of that "
                                       "name: not class scores, no labels."))
    return entries


def _metadata_buffer(general, image, outputs: list) -> bytearray:
    """The ``ModelMetadata`` flatbuffer of one subgraph with one input and ``outputs``."""
    graph = metadata_fb.SubGraphMetadataT()
    graph.inputTensorMetadata = [image.create_metadata()]
    graph.outputTensorMetadata = [out.create_metadata() for out in outputs]
    model = general.create_metadata()
    model.subgraphMetadata = [graph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), mp_metadata.MetadataPopulator.METADATA_FILE_IDENTIFIER)
    return builder.Output()


def read_metadata(path: str) -> dict:
    """The metadata of the ``.tflite`` at ``path``, read back with ``MetadataDisplayer``.

    Args:
      path: a ``.tflite`` file.

    Returns:
      ``{"metadata": <the metadata JSON as a dict>, "files": {name: text}}``
      for every packed associated file.

    Raises:
      MetadataError: the file has no metadata.
    """
    try:
        displayer = mp_metadata.MetadataDisplayer.with_model_file(os.fspath(path))
    except ValueError as e:
        raise MetadataError(f"{path} carries no TFLite metadata: {e}", argument="path") from e
    files = {name: displayer.get_associated_file_buffer(name).decode()
             for name in displayer.get_packed_associated_file_list()}
    return {"metadata": json.loads(displayer.get_metadata_json()), "files": files}


def read_normalization(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The input's ``NormalizationOptions`` of the ``.tflite`` at ``path``, per R, G, B channel.

    A client computes ``(pixel - mean) / std`` of raw R, G, B pixels and feeds it
    (cast to the input's dtype).

    Args:
      path: a ``.tflite`` file written with :func:`add_metadata`.

    Returns:
      ``(mean, std)``, float32 arrays of 3 values (one stored value is broadcast).

    Raises:
      MetadataError: no metadata, or no normalisation on the input.
    """
    tensor = read_metadata(path)["metadata"]["subgraph_metadata"][0]["input_tensor_metadata"][0]
    for unit in tensor.get("process_units", []):
        if unit.get("options_type") == "NormalizationOptions":
            mean, std = (np.asarray(unit["options"][k], np.float32) for k in ("mean", "std"))
            return np.broadcast_to(mean, 3).copy(), np.broadcast_to(std, 3).copy()
    raise MetadataError(f"{path}: the input's metadata has no NormalizationOptions",
                        argument="path")
