"""The minimum metadata parser version that stands in for MediaPipe's missing extension."""
import flatbuffers
import pytest

from pipeline.export import mediapipe_metadata

_, _, mp_metadata, fb = mediapipe_metadata.writers()


def packed(model) -> bytes:
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), mp_metadata.MetadataPopulator.METADATA_FILE_IDENTIFIER)
    return bytes(builder.Output())


def with_file(file_type=None, version=None, where="output"):
    file = fb.AssociatedFileT()
    file.name, file.type, file.version = "f.txt", file_type, version
    tensor, graph, model = fb.TensorMetadataT(), fb.SubGraphMetadataT(), fb.ModelMetadataT()
    if where == "output":
        tensor.associatedFiles = [file]
    graph.outputTensorMetadata = [tensor]
    model.subgraphMetadata = [graph]
    if where == "model":
        model.associatedFiles = [file]
    return model


def with_unit(options_type, where="tensor"):
    unit = fb.ProcessUnitT()
    unit.optionsType = options_type
    tensor, graph, model = fb.TensorMetadataT(), fb.SubGraphMetadataT(), fb.ModelMetadataT()
    if where == "tensor":
        tensor.processUnits = [unit]
    else:
        graph.inputProcessUnits = [unit]
    graph.inputTensorMetadata = [tensor]
    model.subgraphMetadata = [graph]
    return model


def with_groups():
    graph, model = fb.SubGraphMetadataT(), fb.ModelMetadataT()
    graph.outputTensorGroups = [fb.TensorGroupT()]
    model.subgraphMetadata = [graph]
    return model


@pytest.mark.parametrize("model, version", [
    (with_file(fb.AssociatedFileType.TENSOR_AXIS_LABELS), "1.0.0"),  # what add_metadata writes
    (with_unit(fb.ProcessUnitOptions.NormalizationOptions), "1.0.0"),
    (with_file(fb.AssociatedFileType.VOCABULARY), "1.0.1"),
    (with_file(fb.AssociatedFileType.VOCABULARY, where="model"), "1.0.1"),
    (with_unit(fb.ProcessUnitOptions.NormalizationOptions, where="subgraph"), "1.1.0"),
    (with_unit(fb.ProcessUnitOptions.BertTokenizerOptions), "1.1.0"),
    (with_groups(), "1.2.0"),
    (with_unit(fb.ProcessUnitOptions.RegexTokenizerOptions), "1.2.1"),
    (with_file(fb.AssociatedFileType.SCANN_INDEX_FILE), "1.4.0"),
    (with_file(fb.AssociatedFileType.TENSOR_AXIS_LABELS, version="2"), "1.4.1"),
])
def test_min_parser_version_is_the_newest_member_used(model, version):
    assert mediapipe_metadata.min_parser_version(packed(model)) == version

