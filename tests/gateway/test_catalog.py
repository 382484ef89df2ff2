"""Model cards are parsed from Triton model configs written by export."""

from __future__ import annotations

import json

import pytest

from gateway.catalog import parse_model_card
from gateway.errors import ModelMisconfigured


def _config(**parameters: object) -> dict:
    params = {
        "medserve_contract": "1",
        "task": "classification",
        "inputs": [{"name": "image", "shape": [-1, 1, 128, 128], "dtype": "float32"}],
        "outputs": [{"name": "probabilities", "meaning": "class_probabilities", "labels": ["a", "b"]}],
        "preprocessing": {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": [128, 128]},
        "export_report_digest": "f" * 64,
    } | parameters
    return {
        "name": "m",
        "max_batch_size": 16,
        "parameters": {k: {"string_value": v if isinstance(v, str) else json.dumps(v)} for k, v in params.items()},
    }


def test_card_from_config() -> None:
    card = parse_model_card(_config())
    assert card.name == "m"
    assert card.labels == ["a", "b"]
    assert card.max_batch_size == 16
    assert card.preprocessing.window.preset == "lung"
    assert card.inputs[0].shape == [-1, 1, 128, 128]


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"name": "m", "parameters": {}}, "no medserve parameters"),  # a model not written by export
        (_config(task=None) | {"parameters": {k: v for k, v in _config()["parameters"].items() if k != "task"}}, "malformed"),
        (_config(preprocessing={"window": {"preset": "nope"}}), "malformed"),  # invalid spec inside
        (_config(inputs="not json"), "malformed"),
    ],
)
def test_misconfigured_models_are_reported(config: dict, match: str) -> None:
    with pytest.raises(ModelMisconfigured, match=match):
        parse_model_card(config)


def test_a_description_that_looks_like_json_is_text() -> None:
    card = parse_model_card(_config(description="[draft] {not json"))
    assert card.description == "[draft] {not json"
    assert card.task == "classification"  # a contract Task, equal to its string


@pytest.mark.parametrize("version", ["1", "1.0", "1.9"])
def test_every_minor_of_contract_1_is_served(version: str) -> None:
    assert parse_model_card(_config(medserve_contract=version)).labels == ["a", "b"]


def test_an_unknown_contract_major_is_refused_with_its_reason() -> None:
    with pytest.raises(ModelMisconfigured, match=r"model 'm' was exported under medserve contract 3\.0, this gateway reads contract 1\.x, 2\.x"):
        parse_model_card(_config(medserve_contract="3.0"))
