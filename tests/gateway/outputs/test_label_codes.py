"""What a label is in DICOM codes: the card's codes first, then the built-in SNOMED CT table
(every code as pydicom's dictionary has it), then "Finding"."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from contract import ModelOutput, OutputMeaning
from contract.codes import Code, LabelCodes
from gateway.outputs.label_codes import FINDING, TABLE, card_label_codes, label_codes

_SCT = {(code.value, code.meaning) for code in (getattr(codes.SCT, name) for name in codes.SCT.dir())}


def test_every_table_code_is_pydicoms_snomed_ct_code() -> None:
    for item in TABLE.values():
        for code in (item.category, item.type, item.site):
            if code is not None:
                assert code.scheme == "SCT" and (code.value, code.meaning) in _SCT


@pytest.mark.parametrize(
    ("label", "category", "type_", "site"),
    [
        ("nodule", "49755003", "27925004", None),
        ("Tumour", "49755003", "108369006", None),
        ("pleural-effusion", "49755003", "60046008", None),
        ("Liver", "91723000", "10200004", "10200004"),
        ("kidneys", "91723000", "64033007", "64033007"),
        ("Adrenal Gland", "91723000", "23451007", "23451007"),
    ],
)
def test_common_labels_are_coded_by_the_table(label, category, type_, site) -> None:
    item = label_codes(label)
    assert (item.category.value, item.type.value, item.site.value if item.site else None) == (category, type_, site)


def test_an_unknown_label_is_a_finding() -> None:
    assert label_codes("gizmo") == FINDING
    assert FINDING.type == Code("SCT", "404684003", codes.SCT.Finding.meaning)


def test_the_cards_codes_win() -> None:
    ours = LabelCodes(Code("SCT", "49755003", "Morphologically abnormal structure"), Code("SCT", "4147007", "Mass"))
    output = ModelOutput("mask", OutputMeaning.SEGMENTATION_LABELS, ["background", "nodule"], None, "uint8", None, {"nodule": ours})
    card = type("Card", (), {"outputs": [output]})()
    assert card_label_codes(card) == {"nodule": ours}
    assert label_codes("nodule", card_label_codes(card)) == ours
    assert label_codes("liver", card_label_codes(card)).type.value == "10200004"
