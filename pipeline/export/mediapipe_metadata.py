"""MediaPipe's metadata writers, importable from MediaPipe's pip wheel.

MediaPipe Tasks (``mediapipe`` on PyPI, 0.10.35 to 1.2.3 checked) ships the
TFLite metadata writers (``mediapipe.tasks.python.metadata.metadata_writers``)
and ``MetadataPopulator``/``MetadataDisplayer``
(``mediapipe.tasks.python.metadata.metadata``), but that module imports a
compiled extension, ``mediapipe.tasks.cc.metadata.python._pywrap_metadata_version``,
which none of those wheels contains (they carry ``libmediapipe.so`` and
ctypes bindings only), so ``import ...metadata_writers.image_classifier``
fails with ``ModuleNotFoundError: No module named 'mediapipe.tasks.cc'``.

The extension has one function, ``GetMinimumMetadataParserVersion(buffer)``:
the oldest metadata parser that can read a ``ModelMetadata`` flatbuffer,
the largest "added in" version of the schema members the buffer uses
(``mediapipe/tasks/cc/metadata/metadata_version.cc``). :func:`min_parser_version`
computes the same from MediaPipe's own generated schema, and
:func:`writers` registers it under the missing name (only when the real one
is absent) before importing the writers and the populator, so everything else is MediaPipe's
code unchanged. This module is the only place that knows about the gap.

Example:
  >>> metadata_info, writer_utils, metadata, metadata_schema = writers()
"""
from __future__ import annotations

import importlib
import sys
import types

_MISSING = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
_BASE = (1, 0, 0)


def min_parser_version(metadata_buf: bytes) -> str:
    """The minimum metadata parser version of a ``ModelMetadata`` flatbuffer, as ``"1.0.0"``.

    Args:
      metadata_buf: a serialized ``ModelMetadata`` (identifier ``M001``).

    Returns:
      The largest version in which a member the buffer uses was added
      (1.0.0 when it uses none of the later ones).
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    meta = fb.ModelMetadataT.InitFromPackedBuf(bytes(metadata_buf), 0)
    found = [_BASE] + _files(meta.associatedFiles, fb)
    for graph in meta.subgraphMetadata or []:
        for tensor in (graph.inputTensorMetadata or []) + (graph.outputTensorMetadata or []):
            found += _files(tensor.associatedFiles, fb) + _units(tensor.processUnits, fb)
            content = tensor.content
            if content is not None and \
                    content.contentPropertiesType == fb.ContentProperties.AudioProperties:
                found.append((1, 3, 0))
        found += _files(graph.associatedFiles, fb)
        for units in (graph.inputProcessUnits, graph.outputProcessUnits):
            if units is not None:
                found += [(1, 1, 0)] + _units(units, fb)
        if graph.inputTensorGroups is not None or graph.outputTensorGroups is not None:
            found.append((1, 2, 0))
    return ".".join(str(part) for part in max(found))


def _files(files, fb) -> list[tuple[int, int, int]]:
    added = {fb.AssociatedFileType.VOCABULARY: (1, 0, 1),
             fb.AssociatedFileType.SCANN_INDEX_FILE: (1, 4, 0)}
    found = []
    for file in files or []:
        if file.type in added:
            found.append(added[file.type])
        if file.version is not None:
            found.append((1, 4, 1))
    return found


def _units(units, fb) -> list[tuple[int, int, int]]:
    added = {fb.ProcessUnitOptions.BertTokenizerOptions: (1, 1, 0),
             fb.ProcessUnitOptions.SentencePieceTokenizerOptions: (1, 1, 0),
             fb.ProcessUnitOptions.RegexTokenizerOptions: (1, 2, 1)}
    return [added[unit.optionsType] for unit in units or [] if unit.optionsType in added]


def _provide_missing_extension() -> None:
    """Registers :func:`min_parser_version` as the missing extension (and its empty parents)."""
    try:
        importlib.import_module(_MISSING)
        return
    except ImportError:
        pass
    parts = _MISSING.split(".")
    for depth in range(3, len(parts) + 1):  # below mediapipe.tasks, which exists
        name = ".".join(parts[:depth])
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            sys.modules[name].__path__ = []  # a package, so the next part can be imported
        setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], sys.modules[name])
    sys.modules[_MISSING].GetMinimumMetadataParserVersion = min_parser_version


def writers():
    """MediaPipe's ``(metadata_info, writer_utils, metadata, metadata_schema)`` modules.

    ``metadata`` holds ``MetadataPopulator`` and ``MetadataDisplayer``;
    ``metadata_schema`` the generated ``ModelMetadataT``, ``SubGraphMetadataT``.

    Raises:
      ImportError: ``mediapipe`` is not installed (``make setup`` installs it).
    """
    import mediapipe.tasks  # noqa: F401  (the parent the missing extension hangs from)
    _provide_missing_extension()
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_schema
    from mediapipe.tasks.python.metadata import metadata
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info
    from mediapipe.tasks.python.metadata.metadata_writers import writer_utils
    return metadata_info, writer_utils, metadata, metadata_schema
