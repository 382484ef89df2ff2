"""A job's deliveries through the gateway, against a real tritonserver: the job makes the DICOM
outputs its route sends beside its answer — the very objects predict answers for the same input
— or records why one cannot be made; the job API shows where they are; the dead-letter list and
its retry are the deliveries API (404 / 409 with stable codes)."""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path
from typing import Iterator

import pydicom
import pytest
from fastapi.testclient import TestClient

from devtools.processes import free_port
from gateway.job_runner import ModelJobRunner
from jobs import JobStore, JobWorker
from jobs.delivery import DeliveryStore, DeliveryWorker, DimseDestination, RetryPolicy, Send

SEGMENTER = "ct_nodule_segmenter"
DICOM = {"Content-Type": "application/dicom"}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from gateway.config import Settings
    from gateway.main import create_app

    settings = Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, work_dir=str(tmp_path_factory.mktemp("work")), job_workers=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def run_job(served: TestClient, source: Path, tmp_path: Path, outputs: list[str]) -> str:
    """A job on ``source`` whose route sends ``outputs`` to ``pacs``, run on the app's loop to done."""
    store: JobStore = served.app.state.job_store
    folder = tmp_path / "input"
    folder.mkdir()
    shutil.copy(source, folder / "0000.dcm")
    job, _ = store.submit(SEGMENTER, "dimse", str(folder), sends=[Send(destination="pacs", outputs=outputs)])
    worker = JobWorker(store, ModelJobRunner(served.app, served.portal.call(asyncio.get_running_loop)), "test-worker")
    while (done := worker.run_once()) is not None and done.id != job.id:
        pass
    return job.id


def test_a_job_makes_the_outputs_its_route_sends_as_predict_answers_them(served: TestClient, real_ct_files, tmp_path: Path) -> None:
    source = real_ct_files["CT_small"]
    job_id = run_job(served, source, tmp_path, ["seg", "sr"])
    job = served.get(f"/v1/jobs/{job_id}").json()
    [delivery] = job["deliveries"]
    assert (job["state"], job["export_state"], delivery["state"], delivery["outputs"]) == ("done", "pending", "pending", ["seg", "sr"])
    files = DeliveryStore(served.app.state.job_store.engine).get(delivery["id"]).files
    for output, path in zip(["seg", "sr"], files, strict=True):
        answered = served.post(f"/v1/models/{SEGMENTER}/predict?format={output}", content=source.read_bytes(), headers=DICOM)
        sent, asked = pydicom.dcmread(path), pydicom.dcmread(io.BytesIO(answered.content))
        assert (sent.SOPInstanceUID, sent.SeriesInstanceUID) == (asked.SOPInstanceUID, asked.SeriesInstanceUID)  # one object, however asked


def test_an_output_the_source_cannot_carry_dead_letters_its_delivery_not_the_job(served: TestClient, real_ct_files, tmp_path: Path) -> None:
    source = tmp_path / "no-frame-of-reference.dcm"
    ds = pydicom.dcmread(real_ct_files["CT_small"])
    del ds.FrameOfReferenceUID
    ds.save_as(source)
    job = served.get(f"/v1/jobs/{run_job(served, source, tmp_path, ['seg'])}").json()
    assert (job["state"], job["export_state"]) == ("done", "failed_export")
    assert job["deliveries"][0]["error"]["code"] == "output_unavailable"
    assert "Frame of Reference" in job["deliveries"][0]["error"]["message"]
    retried = served.post(f"/v1/deliveries/{job['deliveries'][0]['id']}/retry")
    assert (retried.status_code, retried.json()["code"]) == (409, "delivery_not_retryable")  # nothing was made to send


def test_the_dead_letter_list_and_its_retry(served: TestClient, real_ct_files, tmp_path: Path) -> None:
    job_id = run_job(served, real_ct_files["CT_small"], tmp_path, ["seg"])
    nowhere = DimseDestination(kind="dimse", ae_title="PACS", host="127.0.0.1", port=free_port(), timeout_s=2, retry=RetryPolicy(max_attempts=1))
    sender = DeliveryWorker(DeliveryStore(served.app.state.job_store.engine), {"pacs": nowhere}, "test-sender")
    while (attempted := sender.run_once()) is not None and attempted.job_id != job_id:
        pass
    dead = served.get("/v1/deliveries", params={"state": "failed_export", "job_id": job_id}).json()["deliveries"]
    assert [(d["job_id"], d["attempts"], d["error"]["code"]) for d in dead] == [(job_id, 1, "destination_unreachable")]
    assert served.get(f"/v1/jobs/{job_id}").json()["export_state"] == "failed_export"

    retried = served.post(f"/v1/deliveries/{dead[0]['id']}/retry")
    assert retried.status_code == 200 and (retried.json()["state"], retried.json()["attempts"]) == ("pending", 0)
    assert served.get(f"/v1/deliveries/{dead[0]['id']}").json()["state"] == "pending"
    again = served.post(f"/v1/deliveries/{dead[0]['id']}/retry")
    assert (again.status_code, again.json()["code"]) == (409, "delivery_not_retryable")
    for response in (served.get("/v1/deliveries/" + "0" * 32), served.post("/v1/deliveries/" + "0" * 32 + "/retry")):
        assert (response.status_code, response.json()["code"]) == (404, "delivery_not_found")
    assert served.get("/v1/deliveries", params={"state": "lost"}).status_code == 422
