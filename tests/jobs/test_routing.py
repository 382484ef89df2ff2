"""Routing rules (``MEDSERVE_ROUTES``): which models run on a received series."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import ModelCard, ModelInput, ModelOutput
from jobs.routing import RoutesError, RoutingRules, SeriesFacts, accepts
from preprocessing import PreprocessingSpec


def _card(name: str, modality: str, layout: str = "CHW", inputs: int = 1, task: str = "segmentation-2d") -> ModelCard:
    spec = PreprocessingSpec(modalities=(modality,), layout=layout)
    shape = [-1, 1, 64, 64] if layout == "CHW" else [-1, 1, 32, 64, 64]
    return ModelCard(
        name=name, task=task, description="", preprocessing=spec, max_batch_size=1, export_report_digest="",
        inputs=[ModelInput(f"in{i}", "float32", shape, modality, spec) for i in range(inputs)],
        outputs=[ModelOutput("labels", "segmentation_labels", ["background", "organ"], None, "uint8")],
    )


CT_2D = _card("ct_2d", "CT")
CT_3D = _card("ct_3d", "CT", layout="CDHW", task="segmentation-3d")
MR_2D = _card("mr_2d", "MR")
FUSION = _card("ct_pet", "CT", inputs=2, task="multi-input")
CARDS = [CT_2D, CT_3D, MR_2D, FUSION]
CHEST_CT = SeriesFacts(modality="CT", body_part="CHEST", series_description="Lung 1.25mm", calling_ae="PACS", called_ae="MEDSERVE", slices=120)


def _rules(tmp_path: Path, text: str) -> RoutingRules:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return RoutingRules.load(path)


def test_default_routes_each_series_to_the_single_input_models_that_take_it():
    rules = RoutingRules.load(None)
    assert rules.route(CHEST_CT, CARDS) == [("default", "ct_2d"), ("default", "ct_3d")]
    one_slice = SeriesFacts(modality="CT", slices=1)
    assert [m for _, m in rules.route(one_slice, CARDS)] == ["ct_2d"]  # a 3D model needs a volume
    assert [m for _, m in rules.route(SeriesFacts(modality="MR", slices=30), CARDS)] == ["mr_2d"]
    assert rules.route(SeriesFacts(modality="US"), CARDS) == []  # unrouted, not an error
    assert not accepts(FUSION, CHEST_CT)


def test_rules_match_every_given_key_and_add_up_in_order(tmp_path):
    rules = _rules(tmp_path, """
routes:
  - name: chest
    match: {modality: [ct], body_part: [Chest, LUNG], series_description: "(?i)lung", calling_ae: [PACS]}
    models: [ct_3d]
  - name: everything-ct
    match: {modality: [CT]}
    models: auto
  - name: from-router
    match: {called_ae: [ROUTER]}
    models: [mr_2d]
""")
    assert rules.route(CHEST_CT, CARDS) == [("chest", "ct_3d"), ("everything-ct", "ct_2d")]
    head = SeriesFacts(modality="CT", body_part="HEAD", series_description="Brain", calling_ae="PACS", slices=40)
    assert rules.route(head, CARDS) == [("everything-ct", "ct_2d"), ("everything-ct", "ct_3d")]
    assert rules.route(SeriesFacts(modality="MR", called_ae="MEDSERVE"), CARDS) == []
    assert rules.route(SeriesFacts(modality="MR", called_ae="ROUTER"), CARDS) == [("from-router", "mr_2d")]


def test_group_by_study_per_rule(tmp_path):
    rules = _rules(tmp_path, "routes:\n  - {name: whole-study, match: {modality: [CT]}, models: [ct_3d], group_by: study}\n")
    assert rules.group_by(CHEST_CT) == "study"
    assert rules.group_by(SeriesFacts(modality="MR")) == "series"


def test_named_models_not_served_are_reported(tmp_path):
    rules = _rules(tmp_path, "routes:\n  - {name: r, models: [ct_3d, retired_model]}\n")
    assert rules.unknown_models([c.name for c in CARDS]) == ["retired_model"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routes: []\n", "routes: List should have at least 1 item"),
        ("routes:\n  - {name: r, models: [a], match: {series_description: '(unclosed'}}\n", "routes[0].match.series_description: not a regular expression"),
        ("routes:\n  - {name: r, models: [a], match: {modality: [CT], bodypart: [CHEST]}}\n", "routes[0].match.bodypart: Extra inputs are not permitted"),
        ("routes:\n  - {name: r, models: [a], group_by: patient}\n", "routes[0].group_by"),
        ("routes:\n  - {name: r, models: [a]}\n  - {name: r, models: [b]}\n", "route names must be unique, repeated: r"),
        ("routes: [\n", "not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_at_start_naming_the_rule_and_key(tmp_path, text, message):
    with pytest.raises(RoutesError, match=message.replace("[", r"\[").replace("(", r"\(")):
        _rules(tmp_path, text)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(RoutesError, match="routes file not found"):
        RoutingRules.load(tmp_path / "nope.yaml")
