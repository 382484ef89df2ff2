"""CT + PET fusion through the gateway and a real Triton: inputs matched by field or Modality."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient

from devtools.zoo.datasets import write_fusion_set
from preprocessing import PreprocessingSpec, preprocess_instance, read_dataset

MODEL = "ct_pet_nodule_classifier"


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("fusion")
    write_fusion_set(folder, count=8, seed=77)
    with open(folder / "manifest.csv", newline="") as handle:
        return [
            {"ct": (folder / row["ct"]).read_bytes(), "pet": (folder / row["pet"]).read_bytes(), "label": int(row["label"])}
            for row in csv.DictReader(handle)
        ]


def _avid(body: dict) -> float:
    return {p["label"]: p["probability"] for p in body["probabilities"]}["avid_nodule"]


def test_fields_and_modality_give_the_same_answer_as_onnxruntime(gateway: TestClient, cases, model_repository) -> None:
    import onnxruntime as ort

    case = cases[1]
    by_field = gateway.post(
        f"/v1/models/{MODEL}/predict",
        files=[("pet", ("a.dcm", case["pet"], "application/dicom")), ("ct", ("b.dcm", case["ct"], "application/dicom"))],
    )
    assert by_field.status_code == 200, by_field.text
    by_modality = gateway.post(
        f"/v1/models/{MODEL}/predict",
        files=[("file", ("a.dcm", case["pet"], "application/dicom")), ("file", ("b.dcm", case["ct"], "application/dicom"))],
    )
    assert by_modality.status_code == 200, by_modality.text
    assert _avid(by_field.json()) == pytest.approx(_avid(by_modality.json()), abs=1e-6)
    assert set(by_field.json()["preprocessing"]) == {"ct", "pet"}
    assert "suv" in str(by_field.json()["preprocessing"]["pet"]).lower()

    card = gateway.get(f"/v1/models/{MODEL}").json()
    feeds = {
        t["name"]: preprocess_instance(read_dataset(case[t["name"]]), PreprocessingSpec.from_dict(t["preprocessing"])).array[None]
        for t in card["inputs"]
    }
    session = ort.InferenceSession(str(model_repository / MODEL / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)[0][0]
    assert _avid(by_field.json()) == pytest.approx(float(expected[1]), abs=1e-5)


def test_avid_cases_score_higher(gateway: TestClient, cases) -> None:
    scores = {0: [], 1: []}
    for case in cases:
        body = gateway.post(
            f"/v1/models/{MODEL}/predict",
            files=[("ct", ("ct.dcm", case["ct"], "application/dicom")), ("pet", ("pet.dcm", case["pet"], "application/dicom"))],
        ).json()
        scores[case["label"]].append(_avid(body))
    assert np.mean(scores[1]) > np.mean(scores[0])


def test_a_missing_input_is_a_clear_422(gateway: TestClient, cases) -> None:
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=cases[0]["ct"], headers={"Content-Type": "application/dicom"})
    assert response.status_code == 422
    assert response.json()["code"] == "input_mismatch"
    assert "same number" in response.json()["message"]


def test_stow_routes_ct_and_pet_to_the_fusion_model(live_gateway, cases) -> None:
    import io
    import json

    import pydicom

    import time

    import httpx

    client = DICOMwebClient(url=f"{live_gateway['url']}/dicomweb")
    datasets = [pydicom.dcmread(io.BytesIO(cases[1][kind])) for kind in ("ct", "pet")]
    jobs = {job["model"]: job["url"] for job in json.loads(client.store_instances(datasets=datasets)[0x00111001].value)["jobs"]}
    assert "ct_nodule_classifier" in jobs  # the CT slice also reaches the CT-only classifier
    with httpx.Client(base_url=live_gateway["url"]) as http:
        deadline = time.monotonic() + 120
        while (job := http.get(jobs[MODEL]).json())["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["state"] == "done", job
        assert "probabilities" in http.get(job["result_url"]).json()


def test_the_fusion_models_probabilities_as_sr(gateway: TestClient, cases, tmp_path) -> None:
    import io

    import highdicom as hd
    from pydicom.sr.codedict import codes

    from devtools.dicom3tools import dciodvfy_errors

    files = [("ct", ("ct.dcm", cases[1]["ct"], "application/dicom")), ("pet", ("pet.dcm", cases[1]["pet"], "application/dicom"))]
    served = {p["label"]: p["probability"] for p in gateway.post(f"/v1/models/{MODEL}/predict", files=files).json()["probabilities"]}
    answered = gateway.post(f"/v1/models/{MODEL}/predict?format=sr", files=files)
    assert answered.status_code == 200, answered.text
    assert dciodvfy_errors(answered.content, tmp_path) == []
    groups = hd.sr.srread(io.BytesIO(answered.content)).content.get_image_measurement_groups()
    assert {g.tracking_identifier: g.get_measurements(name=codes.DCM.Probability)[0].value for g in groups} == pytest.approx(served)
