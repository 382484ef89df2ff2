"""``format=fhir``: the result as an HL7 FHIR R4 Bundle a reporting system or FHIR server takes.

A Bundle of type ``collection`` (plain JSON, built here as dicts; the tests validate it with the
``fhir.resources`` R4B models, which R4 documents pass):

- one ``DiagnosticReport`` — status ``final``, category Radiology (v2-0074 ``RAD``), code LOINC
  18748-4 *Diagnostic imaging study*, the source study by its DICOM Study Instance UID
  (``urn:dicom:uid`` / ``urn:oid:``), the patient by Patient ID when the source has one, a one-line
  conclusion, its ``result`` referencing every Observation;
- one ``Device``: the algorithm (model name and version, type DCM 123110 *Artificial
  Intelligence*), which every Observation names as its ``device``;
- for a segmentation, one ``Observation`` per finding (:mod:`gateway.outputs.findings`: a
  connected component of a foreground class, at most 100 per class), status ``final``, category
  ``imaging``, code the label's type code (the card's label codes, else the built-in SNOMED CT
  table, :mod:`gateway.outputs.label_codes`) with the label as text, body site the label's site
  code when it has one, and components with UCUM quantities: volume (SCT 118565006, ``mL``), long
  and short axis (SCT 103339001 / 103340004, ``mm``), mean and maximum (SCT 373098007 / 56851009)
  in the modality's unit (``[hnsf'U]`` for CT, ``Bq/mL`` for PET in BQML, ``1`` otherwise), and as
  identifiers the finding's tracking UID and tracking identifier (``"<label> <n>"``), those the SR
  (``format=sr``) of the same result gives it;
- for a classification, one ``Observation`` per instance: code DCM 121071 *Finding*, value the
  predicted label's code, and one component per class — the class's code, its probability
  (UCUM ``1``).

Resource ids are UUIDs derived from the result (:mod:`gateway.outputs.uids`), so the same result
encoded twice is the same document; references between entries are ``urn:uuid:`` full URLs.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydicom.sr.codedict import Code as PydicomCode
from pydicom.sr.codedict import codes

from contract import Task
from contract.codes import Code, LabelCodes
from preprocessing.attributes import header_text

from .encoder import SEGMENTATION_TASKS, Answer, Binary, output_format
from .findings import Finding, find
from .label_codes import card_label_codes, label_codes
from .uids import derived_uid

#: FHIR code systems of DICOM's coding scheme designators (a scheme not listed is written
#: without a system: its code and display only).
SYSTEMS = {
    "SCT": "http://snomed.info/sct",
    "LN": "http://loinc.org",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "UCUM": "http://unitsofmeasure.org",
}
UCUM = SYSTEMS["UCUM"]
_IMAGING = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging", "display": "Imaging"}]}
_RADIOLOGY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}]}
_IMAGING_STUDY = Code("LN", "18748-4", "Diagnostic imaging study")


def coding(code: Code | PydicomCode) -> dict[str, str]:
    """A FHIR Coding of a DICOM coded concept."""
    scheme = code.scheme if isinstance(code, Code) else code.scheme_designator
    result = {"code": code.value, "display": code.meaning}
    if scheme in SYSTEMS:
        result = {"system": SYSTEMS[scheme], **result}
    return result


def concept(code: Code | PydicomCode, text: str | None = None) -> dict[str, Any]:
    """A FHIR CodeableConcept of one coded concept, ``text`` as people should read it."""
    return {"coding": [coding(code)], "text": text or code.meaning}


def quantity(value: float, unit: str, ucum: str, digits: int) -> dict[str, Any]:
    """A UCUM valueQuantity, ``value`` rounded to ``digits`` decimals."""
    return {"value": round(float(value), digits), "unit": unit, "system": UCUM, "code": ucum}


def _component(code: PydicomCode, text: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"code": concept(code, text), "valueQuantity": value}


def tracking_identifiers(tracking_uid: str, tracking_id: str) -> list[dict[str, str]]:
    """An Observation's identifiers: the finding's tracking UID and tracking identifier, as the
    SR (``format=sr``) of the same result names that finding."""
    return [{"system": "urn:dicom:uid", "value": f"urn:oid:{tracking_uid}"}, {"value": tracking_id}]


def finding_observation(finding: Finding, codes_: LabelCodes) -> dict[str, Any]:
    """The Observation of one segmentation finding (no id, identifiers, subject or device yet)."""
    unit = finding.unit
    components = [
        _component(codes.SCT.Volume, "Volume", quantity(finding.volume_ml, "mL", "mL", 4)),
        _component(codes.SCT.LongAxis, "Long axis", quantity(finding.long_axis_mm, "mm", "mm", 2)),
        _component(codes.SCT.ShortAxis, "Short axis", quantity(finding.short_axis_mm, "mm", "mm", 2)),
    ]
    if finding.mean is not None and finding.maximum is not None:
        components += [
            _component(codes.SCT.Mean, f"Mean ({unit.meaning})", quantity(finding.mean, unit.meaning, unit.code, 2)),
            _component(codes.SCT.Maximum, f"Maximum ({unit.meaning})", quantity(finding.maximum, unit.meaning, unit.code, 2)),
        ]
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [_IMAGING],
        "code": concept(codes_.type, finding.label),
        "component": components,
    }
    if codes_.site is not None:
        observation["bodySite"] = concept(codes_.site)
    return observation


def classification_observation(probabilities: list[tuple[str, float]], card_codes: Mapping[str, LabelCodes]) -> dict[str, Any]:
    """The Observation of one classified instance: the predicted label (``probabilities`` are
    highest first) and every class's probability."""
    predicted = probabilities[0][0]
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [_IMAGING],
        "code": concept(codes.DCM.Finding),
        "valueCodeableConcept": concept(label_codes(predicted, card_codes).type, predicted),
        "component": [
            {"code": concept(label_codes(label, card_codes).type, label), "valueQuantity": quantity(p, "probability", "1", 6)}
            for label, p in probabilities
        ],
    }


def _segmentation(answer: Answer) -> tuple[list[dict[str, Any]], str, Any, list[str]]:
    """Observations, conclusion, a source header, the identity parts of a segmentation result."""
    result, card_codes = answer.result, card_label_codes(answer.card)
    name, version = answer.card.name, result.model_version
    findings = find(result.labels_map, result.affine_lps, result.labels, result.frames)
    slices = [f"{header_text(frame.header, 'SOPInstanceUID')}/{frame.index}" for frame in result.frames]
    observations = []
    for f in findings:
        observation = finding_observation(f, label_codes(f.label, card_codes))
        tracking_uid = derived_uid("finding", name, version, *slices, str(f.label_value), str(f.component))  # the SR's
        observation["identifier"] = tracking_identifiers(tracking_uid, f"{f.label} {f.component}"[:64])
        observations.append(observation)
    counts = {label: sum(f.label == label for f in findings) for label in result.labels[1:]}
    conclusion = "; ".join(
        f"{label}: {count} finding{'s' * (count != 1)}"
        + (f", {sum(f.volume_ml for f in findings if f.label == label):.2f} mL" if count else "")
        for label, count in counts.items()
    )
    labels_map = np.ascontiguousarray(result.labels_map)
    digest = hashlib.sha256(f"{labels_map.shape}{labels_map.dtype}".encode() + labels_map.tobytes()).hexdigest()
    sources = list(dict.fromkeys(header_text(frame.instance.header, "SOPInstanceUID") for frame in result.frames))
    return observations, conclusion, result.frames[0].instance.header, [*sources, digest]


def _classification(answer: Answer) -> tuple[list[dict[str, Any]], str, Any, list[str]]:
    """Observations, conclusion, a source header, the identity parts of a classification result."""
    result, card_codes = answer.result, card_label_codes(answer.card)
    observations = [classification_observation(i.probabilities, card_codes) for i in result.instances]
    conclusion = "; ".join(f"{i.probabilities[0][0]} ({i.probabilities[0][1]:.3f})" for i in result.instances)
    header = next((i.source.header for i in result.instances if i.source is not None), None)
    parts = [i.sop_instance_uid for i in result.instances] + [repr(i.probabilities) for i in result.instances]
    return observations, conclusion, header, parts


def _uuid(*parts: str) -> str:
    """A UUID determined by ``parts`` (the integer of a derived ``2.25`` UID is a UUID's)."""
    return str(uuid.UUID(int=int(derived_uid("fhir", *parts).split(".")[2])))


def bundle(answer: Answer) -> dict[str, Any]:
    """The FHIR R4 Bundle of ``answer`` (see the module docstring)."""
    observations, conclusion, header, parts = (_segmentation if answer.segmented else _classification)(answer)
    name, version = answer.card.name, answer.result.model_version
    identity = (name, version, str(len(parts)), *parts)
    device_id, report_id = _uuid("device", name, version), _uuid("report", *identity)
    device = {
        "resourceType": "Device",
        "id": device_id,
        "manufacturer": "medserve",
        "deviceName": [{"name": name, "type": "model-name"}],
        "type": concept(codes.cid7162.ArtificialIntelligence),
        "version": [{"value": version or "1"}],
    }
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "status": "final",
        "category": [_RADIOLOGY],
        "code": concept(_IMAGING_STUDY, f"medserve {name} {version} AI result"),
    }
    subject = None
    if header is not None:
        patient_id, study_uid = header_text(header, "PatientID"), header_text(header, "StudyInstanceUID")
        if patient_id:
            subject = {"type": "Patient", "identifier": {"value": patient_id}}
            report["subject"] = subject
        if study_uid:
            report["imagingStudy"] = [{"type": "ImagingStudy", "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}}]
    entries = []
    for number, observation in enumerate(observations, start=1):
        observation["id"] = _uuid("observation", *identity, str(number))
        observation["device"] = {"reference": f"urn:uuid:{device_id}", "display": name}
        if subject is not None:
            observation["subject"] = subject
        entries.append(observation)
    report["result"] = [{"reference": f"urn:uuid:{o['id']}"} for o in entries]
    if conclusion:
        report["conclusion"] = conclusion
    return {
        "resourceType": "Bundle",
        "id": _uuid("bundle", *identity),
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in (report, device, *entries)],
    }


@output_format("fhir", "application/fhir+json", tasks=SEGMENTATION_TASKS | {Task.CLASSIFICATION, Task.MULTI_INPUT})
def encoder(answer: Answer) -> Binary:
    """FHIR R4 Bundle: a DiagnosticReport with one Observation per finding (volume, axes, mean/max) or per classified instance"""
    document = bundle(answer)
    return Binary(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
