"""The model card: what export writes is what the gateway reads, under a version both check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from contract import (
    CONTRACT_VERSION,
    SEGMENTATION_MEANINGS,
    ContractVersion,
    MalformedCard,
    MissingContract,
    ModelCard,
    ModelInput,
    ModelOutput,
    OutputMeaning,
    Task,
    UnsupportedContract,
)
from export.spec import load_spec
from export.triton.model_dir import VariantDirectory, write_configs
from export.triton.parameters import gateway_parameters, model_card
from preprocessing import PreprocessingSpec

ZOO_SPECS = sorted((Path(__file__).resolve().parents[2] / "devtools" / "zoo" / "specs").glob("*.yaml"))
DRIFT = {"source": "calibration", "cases": 64, "features": {"intensity": {"kind": "numeric", "edges": [0.0, 0.5, 1.0], "probabilities": [0.5, 0.5]}}}


def _served(config_text: str) -> dict:
    """A rendered config as Triton serves it (``get_model_config(as_json=True)``)."""
    message = text_format.Parse(config_text, model_config_pb2.ModelConfig())
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _config(parameters: dict[str, str], name: str = "m") -> dict:
    return {"name": name, "max_batch_size": 8, "parameters": {k: {"string_value": v} for k, v in parameters.items()}}


def _card(**changes: object) -> ModelCard:
    fields: dict = {
        "name": "m",
        "task": "classification",
        "description": "",
        "inputs": [ModelInput("image", "float32", [-1, 1, 64, 64], "ct")],
        "outputs": [ModelOutput("probabilities", "class_probabilities", ["no", "yes"], [-1, 2])],
        "preprocessing": PreprocessingSpec(modalities=("CT",), output_size=(64, 64)),
        "max_batch_size": 8,
        "export_report_digest": "f" * 64,
    }
    return ModelCard(**(fields | changes))


@pytest.mark.parametrize("spec_path", ZOO_SPECS, ids=lambda p: p.stem)
def test_every_zoo_spec_round_trips_through_the_rendered_configs(spec_path: Path, tmp_path: Path) -> None:
    spec = load_spec(spec_path)
    shapes = [[-1, *(o.shape[1:] if o.shape else [2])] for o in spec.outputs]
    written = model_card(spec, precision="fp32", output_shapes=shapes, report_digest="a" * 64, drift_reference=DRIFT)
    parameters = gateway_parameters(spec, precision="fp32", output_shapes=shapes, onnx_file="model.onnx", report_digest="a" * 64, drift_reference=DRIFT)
    variant = VariantDirectory(name=spec.name, directory=tmp_path / spec.name, precision="fp32")
    variant.version_dir.mkdir(parents=True)
    write_configs(variant, spec, shapes, parameters)

    for rendering in ("config.pbtxt", "configs/onnxruntime.pbtxt"):
        served = _served((variant.directory / rendering).read_text())
        assert served["parameters"]["medserve_contract"]["string_value"] == CONTRACT_VERSION
        assert ModelCard.from_triton_config(served) == written, rendering
    assert written.task is spec.task and [o.meaning for o in written.outputs] == [o.meaning for o in spec.outputs]


@pytest.mark.parametrize("description", ["[draft] not for clinical use", '{"a": 1}', '"quoted"', "", "ünïcode → text"])
def test_free_text_is_never_parsed(description: str) -> None:
    card = _card(description=description)
    assert ModelCard.from_triton_config(_config(card.to_parameters())) == card


def test_only_the_json_keys_are_parsed_as_json() -> None:
    parameters = _card().to_parameters() | {"task": '"classification"'}
    with pytest.raises(MalformedCard, match=r"task: '\"classification\"' is not one this contract knows"):
        ModelCard.from_triton_config(_config(parameters))


@pytest.mark.parametrize(("written", "read"), [("1", ContractVersion(1, 0)), ("1.0", ContractVersion(1, 0)), ("1.7", ContractVersion(1, 7))])
def test_every_minor_of_a_known_major_is_read(written: str, read: ContractVersion) -> None:
    assert ContractVersion.parse(written).require_known() == read
    card = ModelCard.from_triton_config(_config(_card().to_parameters() | {"medserve_contract": written, "added_in_a_later_minor": "x"}))
    assert card == _card()


@pytest.mark.parametrize("written", ["3.0", "3", "0.9"])
def test_an_unknown_major_is_refused_with_its_reason(written: str) -> None:
    with pytest.raises(UnsupportedContract, match=rf"model 'm' was exported under medserve contract {written[0]}\.\d, this gateway reads contract 1\.x, 2\.x"):
        ModelCard.from_triton_config(_config(_card().to_parameters() | {"medserve_contract": written}))


@pytest.mark.parametrize(
    ("parameters", "error", "match"),
    [
        ({}, MissingContract, "no medserve parameters"),
        ({"medserve_contract": "one"}, MalformedCard, "medserve_contract must be 'major.minor'"),
        (_card().to_parameters() | {"inputs": "not json"}, MalformedCard, "malformed medserve parameters"),
        (_card().to_parameters() | {"outputs": "{}"}, MalformedCard, "outputs: expected a JSON list"),
        (_card().to_parameters() | {"inputs": '[{"name": "x", "dtype": "float32", "shape": "big"}]'}, MalformedCard, "shape: expected a list of integers"),
        ({k: v for k, v in _card().to_parameters().items() if k != "task"}, MalformedCard, "task: missing"),
        (_card().to_parameters() | {"task": "detection"}, MalformedCard, "'detection' is not one this contract knows"),
        (_card().to_parameters() | {"preprocessing": '{"window": {"preset": "nope"}}'}, MalformedCard, "malformed medserve parameters"),
    ],
)
def test_what_is_not_a_card_is_refused(parameters: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ModelCard.from_triton_config(_config(parameters))


def test_the_card_holds_the_contract_enums() -> None:
    card = _card(task="segmentation-2d", outputs=[ModelOutput("mask", "segmentation_labels", ["bg", "fg"], dtype="uint8")])
    assert card.task is Task.SEGMENTATION_2D and card.task == "segmentation-2d" and card.task.is_segmentation
    assert card.outputs[0].meaning is OutputMeaning.SEGMENTATION_LABELS and card.outputs[0].meaning in SEGMENTATION_MEANINGS
    assert card.inputs[0].modality == "CT" and card.labels == ["bg", "fg"]
    with pytest.raises(MalformedCard, match="meaning: 'mask' is not one this contract knows"):
        ModelOutput("m", "mask")


def test_a_card_whose_answer_a_1x_reader_would_change_is_written_under_major_2() -> None:
    """A cascade or an output post-processing, ignored by a 1.x gateway, would be served as
    something else than export verified: such cards are 2.0, which 1.x readers refuse."""
    from dataclasses import replace

    from contract import CONTRACT_VERSION, CONTRACT_VERSION_CHANGED_ANSWER
    from contract.cascade import CascadeSpec
    from postprocessing.region import RegionSpec

    plain = _card()
    assert plain.to_parameters()["medserve_contract"] == CONTRACT_VERSION == "1.3"
    cascade = replace(plain, cascade=CascadeSpec("localiser", RegionSpec(margin_fraction=0.1)))
    parameters = cascade.to_parameters()
    assert parameters["medserve_contract"] == CONTRACT_VERSION_CHANGED_ANSWER == "2.0"
    assert ModelCard.from_triton_config(_config(parameters)) == cascade


def test_the_export_report_travels_in_the_card_as_the_document_and_is_optional() -> None:
    """Contract 1.3: the report export wrote (any JSON document: text with quotes and newlines,
    numbers, nested lists) comes back equal; a card without one (1.2 and before) reads as None."""
    report = {"model": "m", "steps": [{"name": "torch2onnx", "status": "OK", "detail": 'opset 17, "quoted"\nnext line', "seconds": 0.25}],
              "variants": [{"precision": "fp32", "metric": 0.99, "max_difference": [{"output": "p", "max_abs": 1e-7}]}]}
    card = _card(export_report=report)
    parameters = card.to_parameters()
    assert parameters["medserve_contract"] == "1.3"
    message = text_format.Parse(
        "".join(f'parameters {{ key: {json.dumps(k)} value {{ string_value: {json.dumps(v)} }} }}\n' for k, v in parameters.items()),
        model_config_pb2.ModelConfig(),
    )
    served = json_format.MessageToDict(message, preserving_proto_field_name=True)
    read = ModelCard.from_triton_config({"name": "m", "max_batch_size": 8, **served})
    assert read.export_report == report and read == card
    assert "export_report" not in _card().to_parameters()
    assert ModelCard.from_triton_config(_config(_card().to_parameters())).export_report is None
