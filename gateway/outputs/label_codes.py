"""What a class label is, in DICOM codes: the model card's own codes when export wrote them
(:mod:`contract.codes`), else a built-in table of SNOMED CT codes for common labels, else
"Finding".

The table (SNOMED CT codes as pydicom's ``codes.SCT`` dictionary has them, none written by
hand). A label is looked up lower-cased, with spaces, hyphens and underscores alike:

- abnormalities — category *Morphologically abnormal structure* (49755003), type: nodule
  (27925004), lesion (52988006), mass (4147007), tumor / tumour / neoplasm (108369006), cyst
  (367643001), metastasis (128462008), hemorrhage / haemorrhage (50960005), edema / oedema
  (79654002), effusion (41699000), pleural effusion (60046008), pneumothorax (36118008);
  no finding site.
- anatomy — category *Anatomical structure* (91723000), type and finding site the organ:
  liver (10200004), lung / lungs (39607008), kidney / kidneys (64033007), spleen (78961009),
  brain (12738006), heart (80891009), pancreas (15776009), prostate (41216001), bladder
  (89837001), stomach (69695003), colon (71854001), aorta (15825003), bone (272673000),
  vertebra (51282000), gallbladder (28231008), esophagus / oesophagus (32849002), trachea
  (44567001), adrenal gland (23451007), thyroid (69748006), duodenum (38848004), small
  intestine (30315005), rectum (34402009), uterus (35039007), muscle (71616004), fat (256674009).
- any other label — category and type *Finding* (SCT 404684003); the label itself is the
  segment's label and the finding's tracking identifier.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydicom.sr.codedict import Code as PydicomCode
from pydicom.sr.codedict import codes

from contract import ModelCard
from contract.codes import Code, LabelCodes

__all__ = ["FINDING", "TABLE", "card_label_codes", "label_codes"]


def _code(code: PydicomCode) -> Code:
    return Code(code.scheme_designator, code.value, code.meaning)


_ABNORMAL = {
    "nodule": codes.SCT.Nodule,
    "lesion": codes.SCT.Lesion,
    "mass": codes.SCT.Mass,
    "tumor": codes.SCT.Neoplasm,
    "tumour": codes.SCT.Neoplasm,
    "neoplasm": codes.SCT.Neoplasm,
    "cyst": codes.SCT.Cyst,
    "metastasis": codes.SCT.Metastasis,
    "hemorrhage": codes.SCT.Hemorrhage,
    "haemorrhage": codes.SCT.Hemorrhage,
    "edema": codes.SCT.Edema,
    "oedema": codes.SCT.Edema,
    "effusion": codes.SCT.Effusion,
    "pleural_effusion": codes.SCT.PleuralEffusion,
    "pneumothorax": codes.SCT.Pneumothorax,
}
_ANATOMY = {
    "liver": codes.SCT.Liver,
    "lung": codes.SCT.Lung,
    "lungs": codes.SCT.Lung,
    "kidney": codes.SCT.Kidney,
    "kidneys": codes.SCT.Kidney,
    "spleen": codes.SCT.Spleen,
    "brain": codes.SCT.Brain,
    "heart": codes.SCT.Heart,
    "pancreas": codes.SCT.Pancreas,
    "prostate": codes.SCT.Prostate,
    "bladder": codes.SCT.Bladder,
    "stomach": codes.SCT.Stomach,
    "colon": codes.SCT.Colon,
    "aorta": codes.SCT.Aorta,
    "bone": codes.SCT.Bone,
    "vertebra": codes.SCT.Vertebra,
    "gallbladder": codes.SCT.Gallbladder,
    "esophagus": codes.SCT.Esophagus,
    "oesophagus": codes.SCT.Esophagus,
    "trachea": codes.SCT.Trachea,
    "adrenal_gland": codes.SCT.AdrenalGland,
    "thyroid": codes.SCT.Thyroid,
    "duodenum": codes.SCT.Duodenum,
    "small_intestine": codes.SCT.SmallIntestine,
    "rectum": codes.SCT.Rectum,
    "uterus": codes.SCT.Uterus,
    "muscle": codes.SCT.Muscle,
    "fat": codes.SCT.Fat,
}

#: The built-in table: normalised label → its codes.
TABLE: dict[str, LabelCodes] = {
    **{name: LabelCodes(_code(codes.SCT.MorphologicallyAbnormalStructure), _code(code)) for name, code in _ABNORMAL.items()},
    **{name: LabelCodes(_code(codes.SCT.AnatomicalStructure), _code(code), _code(code)) for name, code in _ANATOMY.items()},
}
FINDING = LabelCodes(_code(codes.SCT.Finding), _code(codes.SCT.Finding))


def _normalised(label: str) -> str:
    return "_".join(label.lower().replace("-", " ").replace("_", " ").split())


def label_codes(label: str, card_codes: Mapping[str, LabelCodes] | None = None) -> LabelCodes:
    """The codes of ``label``: the card's (``card_codes``, an output's ``codes``), else the table's, else :data:`FINDING`."""
    if card_codes and label in card_codes:
        return card_codes[label]
    return TABLE.get(_normalised(label), FINDING)


def card_label_codes(card: ModelCard) -> Mapping[str, LabelCodes]:
    """The label codes of ``card``'s labelled output (the one :attr:`ModelCard.labels` reads)."""
    return next((output.codes for output in card.outputs if output.labels), {})
