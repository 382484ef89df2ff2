"""Multi-input models: instances are matched to inputs by form field, then by Modality."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from contract import ModelCard, ModelInput, ModelOutput
from gateway.errors import InputMismatch
from gateway.tasks.multi_input import match_inputs
from gateway.uploads import DicomPart
from preprocessing import PreprocessingSpec

CARD = ModelCard(
    name="fusion",
    task="multi-input",
    description="",
    inputs=[ModelInput("ct", "float32", [-1, 1, 8, 8], "CT"), ModelInput("pet", "float32", [-1, 1, 4, 4], "PT")],
    outputs=[ModelOutput("probabilities", "class_probabilities", ["no", "yes"])],
    preprocessing=PreprocessingSpec(),
    max_batch_size=8,
    export_report_digest="",
)


def _instance(modality: str, uid: str) -> Dataset:
    ds = Dataset()
    ds.Modality, ds.SOPInstanceUID = modality, uid
    return ds


def _match(*items: tuple[str | None, str, str]) -> dict[str, list[str]]:
    parts = [DicomPart(b"", field) for field, _, _ in items]
    datasets = [_instance(modality, uid) for _, modality, uid in items]
    return {name: [datasets[i].SOPInstanceUID for i in found] for name, found in match_inputs(CARD, parts, datasets).items()}


def test_by_modality() -> None:
    assert _match((None, "PT", "p1"), (None, "CT", "c1")) == {"ct": ["c1"], "pet": ["p1"]}


def test_form_field_wins_over_modality() -> None:
    # a PET reconstruction stored as Modality OT still reaches the 'pet' input when named
    assert _match(("ct", "CT", "c1"), ("pet", "OT", "p1")) == {"ct": ["c1"], "pet": ["p1"]}


def test_pairs_keep_upload_order() -> None:
    assert _match((None, "CT", "c1"), (None, "PT", "p1"), (None, "CT", "c2"), (None, "PT", "p2")) == {
        "ct": ["c1", "c2"],
        "pet": ["p1", "p2"],
    }


@pytest.mark.parametrize(
    ("items", "match"),
    [
        (((None, "CT", "c1"),), "same number"),  # PET missing
        (((None, "CT", "c1"), (None, "CT", "c2"), (None, "PT", "p1")), "same number"),  # unpaired CT
        (((None, "MR", "m1"),), "matches no input"),  # MR fits neither input
    ],
)
def test_mismatches_are_422(items, match: str) -> None:
    with pytest.raises(InputMismatch, match=match):
        _match(*items)
