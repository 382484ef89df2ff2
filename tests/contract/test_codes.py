"""An output's label codes in the card (contract 1.2): written only when present, read back
equal, refused with a reason when malformed."""

from __future__ import annotations

import json

import pytest

from contract import ModelOutput, OutputMeaning
from contract.codes import Code, LabelCodes
from contract.errors import MalformedCard

LESION = LabelCodes(Code("SCT", "49755003", "Morphologically abnormal structure"), Code("SCT", "52988006", "Lesion"), Code("SCT", "10200004", "Liver"))


def _output(**extra) -> ModelOutput:
    return ModelOutput("mask", OutputMeaning.SEGMENTATION_LABELS, ["background", "lesion"], [-1, 8, 8, 8], "uint8", **extra)


def test_codes_round_trip_through_the_document() -> None:
    output = _output(codes={"lesion": LESION})
    document = json.loads(json.dumps(output.to_document()))
    assert document["codes"] == {"lesion": {"category": ["SCT", "49755003", "Morphologically abnormal structure"], "type": ["SCT", "52988006", "Lesion"], "site": ["SCT", "10200004", "Liver"]}}
    assert ModelOutput.from_document(document) == output


def test_an_output_without_codes_writes_no_key_as_before_1_2() -> None:
    assert "codes" not in _output().to_document()
    assert ModelOutput.from_document(_output().to_document()).codes == {}


@pytest.mark.parametrize(
    ("codes", "match"),
    [
        ({"tumour": {"category": ["SCT", "1", "a"], "type": ["SCT", "2", "b"]}}, r"'tumour' not among the output's labels"),
        ({"lesion": {"type": ["SCT", "2", "b"]}}, r"codes.lesion: category missing"),
        ({"lesion": {"category": ["SCT", "1", "a"], "type": ["SCT", "2", ""]}}, r"codes.lesion.type: expected \[scheme designator"),
        ({"lesion": {"category": ["SCT", "1", "a"], "type": ["SCT", "2", "b"], "colour": ["x", "y", "z"]}}, r"unknown keys colour"),
        ({"lesion": {"category": ["SCT", "1" * 17, "a"], "type": ["SCT", "2", "b"]}}, r"code value has 17 characters, at most 16"),
        (["lesion"], r"codes: expected a JSON object"),
    ],
)
def test_malformed_codes_are_refused_with_the_reason(codes, match) -> None:
    document = _output().to_document() | {"codes": codes}
    with pytest.raises(MalformedCard, match=match):
        ModelOutput.from_document(document)
