"""``format=fhir`` through the gateway and a real Triton: the 3D demo segmenter's findings on a CT
series and the demo classifier's label on a real CT, as FHIR R4 Bundles the ``fhir.resources``
models accept."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume
from devtools.testdata import pydicom_test_file

pytestmark = pytest.mark.e2e

SEG_3D = "ct_nodule_segmenter_3d"
CLASSIFIER = "ct_nodule_classifier"


def _resources(response) -> dict[str, list[dict]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    document = response.json()
    Bundle.model_validate(document)
    by_type: dict[str, list[dict]] = {}
    for entry in document["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return by_type


def test_a_segmented_series_is_a_report_of_its_findings(gateway: TestClient, tmp_path) -> None:
    volume, _ = chest_volume(np.random.default_rng(12), slices=24, size=96, nodules=2)
    paths = write_ct_series(tmp_path, volume, spacing_mm=(2.0, 2.0, 2.0))
    files = [("series", (p.name, p.read_bytes(), "application/dicom")) for p in paths]
    resources = _resources(gateway.post(f"/v1/models/{SEG_3D}/predict?format=fhir", files=files))
    [report], observations = resources["DiagnosticReport"], resources["Observation"]
    assert report["status"] == "final" and len(report["result"]) == len(observations) >= 1
    study = pydicom.dcmread(paths[0]).StudyInstanceUID
    assert report["imagingStudy"][0]["identifier"]["value"] == f"urn:oid:{study}"

    # The findings' volumes add up to the class volume the JSON answer measures.
    [nodule] = gateway.post(f"/v1/models/{SEG_3D}/predict", files=files).json()["measurements"]
    volumes = [next(c["valueQuantity"] for c in o["component"] if c["code"]["coding"][0]["code"] == "118565006") for o in observations]
    assert all(v["code"] == "mL" for v in volumes)
    assert sum(v["value"] for v in volumes) == pytest.approx(nodule["volume_ml"], abs=1e-3 * (len(volumes) + 1))
    assert all(o["code"]["text"] == "nodule" and o["code"]["coding"][0]["code"] == "27925004" for o in observations)
    hounsfield = [c["valueQuantity"] for o in observations for c in o["component"] if c["code"]["coding"][0]["code"] == "373098007"]
    assert len(hounsfield) == len(observations) and all(q["code"] == "[hnsf'U]" for q in hounsfield)


def test_a_classified_ct_is_an_observation_of_its_label_with_probability(gateway: TestClient) -> None:
    data = pydicom_test_file("CT_small.dcm").read_bytes()
    headers = {"Content-Type": "application/dicom"}
    resources = _resources(gateway.post(f"/v1/models/{CLASSIFIER}/predict?format=fhir", content=data, headers=headers))
    [observation] = resources["Observation"]
    answer = gateway.post(f"/v1/models/{CLASSIFIER}/predict", content=data, headers=headers).json()
    assert observation["valueCodeableConcept"]["text"] == answer["top_label"]
    probabilities = {c["code"]["text"]: c["valueQuantity"]["value"] for c in observation["component"]}
    assert probabilities == {p["label"]: pytest.approx(p["probability"], abs=1e-6) for p in answer["probabilities"]}
    assert resources["Device"][0]["deviceName"][0]["name"] == CLASSIFIER
