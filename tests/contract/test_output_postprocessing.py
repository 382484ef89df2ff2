"""A segmentation output's post-processing spec travels in the card: written only when set, read back equal."""

from __future__ import annotations

import json

import pytest

from contract import MalformedCard, ModelCard, ModelInput, ModelOutput
from postprocessing import PostprocessingSpec
from preprocessing import PreprocessingSpec

SPEC = PostprocessingSpec.from_dict({
    "steps": [{"op": "threshold", "label": 1, "probability": 0.5}, {"op": "largest_component"}, {"op": "dilate", "mm": 2.0}],
    "grid": "source",
})


def _card(output: ModelOutput) -> ModelCard:
    return ModelCard(
        name="seg",
        task="segmentation-3d",
        description="",
        inputs=[ModelInput("volume", "float32", [-1, 1, 32, 64, 64], "mr")],
        outputs=[output],
        preprocessing=PreprocessingSpec(modalities=("MR",), layout="CDHW", output_size=(32, 64, 64)),
        max_batch_size=1,
        export_report_digest="f" * 64,
    )


def _config(card: ModelCard) -> dict:
    return {"name": card.name, "max_batch_size": card.max_batch_size, "parameters": {k: {"string_value": v} for k, v in card.to_parameters().items()}}


def test_an_output_without_postprocessing_is_written_as_before() -> None:
    output = ModelOutput("probabilities", "segmentation_probabilities", ["background", "brain"], [-1, 2, 32, 64, 64])
    assert output.to_document() == {
        "name": "probabilities", "meaning": "segmentation_probabilities", "labels": ["background", "brain"],
        "shape": [-1, 2, 32, 64, 64], "dtype": "float32",
    }
    assert ModelCard.from_triton_config(_config(_card(output))).outputs[0].postprocessing is None


def test_the_spec_round_trips_through_the_triton_parameters() -> None:
    output = ModelOutput("probabilities", "segmentation_probabilities", ["background", "brain"], [-1, 2, 32, 64, 64], postprocessing=SPEC)
    document = json.loads(_card(output).to_parameters()["outputs"])[0]
    assert document["postprocessing"] == SPEC.to_dict()
    read = ModelCard.from_triton_config(_config(_card(output)))
    assert read.outputs[0].postprocessing == SPEC and read.outputs[0] == output


def test_a_malformed_spec_makes_the_card_malformed_naming_the_key() -> None:
    output = ModelOutput("probabilities", "segmentation_probabilities", ["background", "brain"], postprocessing=SPEC)
    parameters = _card(output).to_parameters()
    documents = json.loads(parameters["outputs"])
    documents[0]["postprocessing"]["steps"][1]["connectivity"] = 7
    parameters["outputs"] = json.dumps(documents)
    config = {"name": "seg", "max_batch_size": 1, "parameters": {k: {"string_value": v} for k, v in parameters.items()}}
    with pytest.raises(MalformedCard, match="connectivity"):
        ModelCard.from_triton_config(config)
