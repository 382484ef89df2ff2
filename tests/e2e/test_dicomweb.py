"""STOW-RS from the real dicomweb-client: instances stored, one job per routed model, each
job's result what predict answers for the same instances."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pydicom
from dicomweb_client.api import DICOMwebClient

from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume

STRIP = ("request_id", "timings_ms")


def _finished(client: httpx.Client, job_id: str, timeout_s: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job not finished after {timeout_s} s: {job}")


def test_stow_rs_stores_the_instances_and_each_routed_models_job_answers_as_predict(start_gateway, tmp_path, testdata) -> None:
    gateway = start_gateway(work_dir=str(tmp_path / "work"))
    volume, _ = chest_volume(np.random.default_rng(9), slices=2, size=256, nodules=1)
    files = write_ct_series(tmp_path, volume, spacing_mm=(2.5, 1.4, 1.4))
    ct = [pydicom.dcmread(p) for p in files]
    mr = pydicom.dcmread(testdata("MR_small.dcm"))  # no served model takes MR: accepted, not processed

    response = DICOMwebClient(url=f"{gateway.url}/dicomweb").store_instances(datasets=[*ct, mr])

    assert {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence} == {ds.SOPInstanceUID for ds in [*ct, mr]}
    assert "FailedSOPSequence" not in response
    assert response[0x00110010].value == "MEDSERVE"
    made = json.loads(response[0x00111001].value)["jobs"]
    assert "ct_nodule_classifier" in {job["model"] for job in made}
    assert "ct_pet_nodule_classifier" not in {job["model"] for job in made}  # no PET sent
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        for made_job in made:
            job = _finished(client, made_job["id"])
            assert made_job["url"] == f"/v1/jobs/{job['id']}" and (job["source"], job["model"]) == ("stow", made_job["model"])
            assert job["study_uid"] == ct[0].StudyInstanceUID and job["series_uid"] == ct[0].SeriesInstanceUID
            direct = client.post(f"/v1/models/{job['model']}/predict", files=[("file", (p.name, p.read_bytes(), "application/dicom")) for p in files])
            if job["state"] == "failed":  # a model the instances do not suit fails as predict refuses them
                assert (job["error"]["code"], direct.status_code >= 400) == (direct.json()["code"], True), job
                continue
            result = client.get(f"/v1/jobs/{job['id']}/result")
            assert result.status_code == 200 and direct.status_code == 200, (result.text, direct.text)
            strip = lambda body: {k: v for k, v in body.items() if k not in STRIP}  # noqa: E731
            assert strip(result.json()) == strip(direct.json()), job["model"]


def test_stow_rs_with_no_readable_instance_is_409_with_every_instance_failed(gateway) -> None:
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--b--\r\n"
    response = gateway.post("/dicomweb/studies", content=body, headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
    assert response.status_code == 409 and response.headers["content-type"].startswith("application/dicom+json")
    payload = response.json()
    assert payload["00081199"]["Value"] == [] and len(payload["00081198"]["Value"]) == 1
    assert payload["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert json.loads(payload["00111001"]["Value"][0])["jobs"] == []
