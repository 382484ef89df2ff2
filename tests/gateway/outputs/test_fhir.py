"""``format=fhir``: an R4 Bundle — a DiagnosticReport, the algorithm's Device and one Observation
per finding or classified instance — that the FHIR models of ``fhir.resources`` accept, carrying
the findings' values in UCUM units."""

from __future__ import annotations

import io
import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from contract import ModelCard, ModelInput, ModelOutput
from contract.codes import Code, LabelCodes
from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume
from gateway.outputs import fhir, sr
from gateway.outputs.encoder import Answer
from gateway.outputs.findings import find
from gateway.tasks.classification import ClassificationResult, InstanceClassification
from gateway.tasks.segmentation import SegmentationResult
from preprocessing import PreprocessingSpec, open_instance, plan_series

LABELS = ["background", "nodule", "vessel"]
VESSEL = LabelCodes(Code("SCT", "49755003", "Morphologically abnormal structure"), Code("SCT", "59820001", "Blood vessel"), Code("SCT", "39607008", "Lung"))


def _segmentation_card() -> ModelCard:
    return ModelCard(
        name="ct_seg", task="segmentation-3d", description="", inputs=[ModelInput("image", "float32", [-1, 1, 6, 64, 64])],
        outputs=[ModelOutput("labels", "segmentation_labels", LABELS, codes={"vessel": VESSEL})],
        preprocessing=PreprocessingSpec(), max_batch_size=1, export_report_digest="",
    )


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """A 6-slice CT phantom series and a label map: its nodules (class 1), a vessel bar (class 2)."""
    volume, mask = chest_volume(np.random.default_rng(0), 6, size=64, nodules=2)
    paths = write_ct_series(tmp_path_factory.mktemp("ct"), volume, spacing_mm=(2.5, 1.4, 1.4), shuffle_seed=None)
    datasets = sorted((pydicom.dcmread(p) for p in paths), key=lambda ds: float(ds.ImagePositionPatient[2]))
    labels_map = mask.astype(np.uint8)
    labels_map[1:4, 40:44, 10:30] = 2
    plan = plan_series(datasets)
    result = SegmentationResult(
        model_version="3", labels=LABELS, labels_map=labels_map, affine_lps=plan.affine_lps, frames=tuple(plan.frames),
        measurements=[], applied={}, patches=1, batches=1, drift=[],
    )
    return datasets, Answer(_segmentation_card(), result, {}, "request-1")


def _resources(document: dict) -> dict[str, list[dict]]:
    Bundle.model_validate(document)  # the FHIR schema: elements, cardinalities, data types (not value sets: asserted below)
    by_type: dict[str, list[dict]] = {}
    for entry in document["entry"]:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
        model = {"DiagnosticReport": DiagnosticReport, "Device": Device, "Observation": Observation}[entry["resource"]["resourceType"]]
        model.model_validate(entry["resource"])  # each resource by its own model too
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return by_type


def _components(observation: dict) -> dict[str, dict]:
    return {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in observation["component"]}


def test_a_segmentation_is_a_report_with_one_observation_per_finding(segmented) -> None:
    datasets, answer = segmented
    document = json.loads(fhir.encoder.encode(answer).content)
    assert fhir.encoder.media_type == "application/fhir+json"
    assert (document["resourceType"], document["type"]) == ("Bundle", "collection")
    resources = _resources(document)
    [report], [device], observations = resources["DiagnosticReport"], resources["Device"], resources["Observation"]

    assert report["status"] == "final"
    assert report["imagingStudy"][0]["identifier"] == {"system": "urn:dicom:uid", "value": f"urn:oid:{datasets[0].StudyInstanceUID}"}
    assert report["subject"]["identifier"]["value"] == datasets[0].PatientID
    assert [r["reference"] for r in report["result"]] == [f"urn:uuid:{o['id']}" for o in observations]
    assert device["deviceName"] == [{"name": "ct_seg", "type": "model-name"}] and device["version"] == [{"value": "3"}]

    result = answer.result
    findings = find(result.labels_map, result.affine_lps, result.labels, result.frames)
    assert len(observations) == len(findings) >= 3  # two nodules at least, one vessel
    for finding, observation in zip(findings, observations):
        assert observation["status"] == "final"
        assert observation["device"]["reference"] == f"urn:uuid:{device['id']}"
        values = _components(observation)
        assert values["118565006"] == {"value": pytest.approx(finding.volume_ml, abs=1e-4), "unit": "mL", "system": fhir.UCUM, "code": "mL"}
        assert values["103339001"]["value"] == pytest.approx(finding.long_axis_mm, abs=0.005) and values["103339001"]["code"] == "mm"
        assert values["103340004"]["value"] == pytest.approx(finding.short_axis_mm, abs=0.005)
        assert values["373098007"]["value"] == pytest.approx(finding.mean, abs=0.005) and values["373098007"]["code"] == "[hnsf'U]"
        assert values["56851009"]["value"] == pytest.approx(finding.maximum, abs=0.005)
        coding = observation["code"]["coding"][0]
        if finding.label == "nodule":  # the built-in SNOMED CT table
            assert (coding["system"], coding["code"], observation["code"]["text"]) == ("http://snomed.info/sct", "27925004", "nodule")
            assert "bodySite" not in observation
        else:  # the card's own codes, site included
            assert (coding["code"], observation["bodySite"]["coding"][0]["code"]) == ("59820001", "39607008")
    nodules = [f for f in findings if f.label == "nodule"]
    assert report["conclusion"].startswith(f"nodule: {len(nodules)} findings, {sum(f.volume_ml for f in nodules):.2f} mL; vessel: 1 finding, ")


def test_each_observation_names_its_finding_as_the_sr_of_the_same_result_does(segmented) -> None:
    _, answer = segmented
    observations = [e["resource"] for e in json.loads(fhir.encoder.encode(answer).content)["entry"] if e["resource"]["resourceType"] == "Observation"]
    groups = hd.sr.srread(io.BytesIO(sr.encoder.encode(answer).content)).content.get_volumetric_roi_measurement_groups()
    assert [o["identifier"] for o in observations] == [
        [{"system": "urn:dicom:uid", "value": f"urn:oid:{g.tracking_uid}"}, {"value": g.tracking_identifier}] for g in groups
    ]


def test_the_same_result_encoded_twice_is_the_same_document(segmented) -> None:
    _, answer = segmented
    assert fhir.encoder.encode(answer).content == fhir.encoder.encode(answer).content
    changed = answer.result.labels_map.copy()
    changed[0, 0, 0] = 1
    other = Answer(answer.card, SegmentationResult(**{**answer.result.__dict__, "labels_map": changed}), {}, "request-2")
    first, second = json.loads(fhir.encoder.encode(answer).content), json.loads(fhir.encoder.encode(other).content)
    assert first["id"] != second["id"] and first["entry"][0]["resource"]["id"] != second["entry"][0]["resource"]["id"]


def test_a_classification_is_an_observation_of_the_predicted_label_per_instance(testdata) -> None:
    card = ModelCard(
        name="ct_cls", task="classification", description="", inputs=[ModelInput("image", "float32", [-1, 1, 8, 8])],
        outputs=[ModelOutput("p", "class_probabilities", ["benign", "nodule"])], preprocessing=PreprocessingSpec(),
        max_batch_size=1, export_report_digest="",
    )
    source = open_instance(testdata("CT_small.dcm").read_bytes())
    result = ClassificationResult("2", [InstanceClassification("1.2.3", [("nodule", 0.875), ("benign", 0.125)], {}, source)])
    resources = _resources(json.loads(fhir.encoder.encode(Answer(card, result, {}, "request-3")).content))
    [report], [observation] = resources["DiagnosticReport"], resources["Observation"]
    assert (report["status"], observation["status"], observation["category"][0]["coding"][0]["code"]) == ("final", "final", "imaging")
    assert observation["valueCodeableConcept"]["text"] == "nodule"
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == "27925004"
    probabilities = {c["code"]["text"]: c["valueQuantity"] for c in observation["component"]}
    assert probabilities["nodule"] == {"value": 0.875, "unit": "probability", "system": fhir.UCUM, "code": "1"}
    assert probabilities["benign"]["value"] == 0.125
    assert report["imagingStudy"][0]["identifier"]["value"] == f"urn:oid:{pydicom.dcmread(testdata('CT_small.dcm')).StudyInstanceUID}"
    assert report["conclusion"] == "nodule (0.875)"
