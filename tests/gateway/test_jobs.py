"""The async REST API against a real tritonserver: a job's result is the synchronous predict
answer for the same input; 202 with Location; 404 / 409 / 406 and a failed job's own code;
Idempotency-Key; filters.

The app under test runs no worker threads of its own (``job_workers=0``): the tests run each
job with a :class:`jobs.JobWorker` on the app's event loop, so nothing waits on a timer; one
test starts a worker thread as the app's lifespan does and polls until it is done.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from jobs import JobStore, JobWorker
from gateway.job_runner import ModelJobRunner

CLASSIFIER = "ct_nodule_classifier"
SEGMENTER = "ct_nodule_segmenter"
DICOM = {"Content-Type": "application/dicom"}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from gateway.config import Settings
    from gateway.main import create_app

    work = tmp_path_factory.mktemp("jobs-work")
    settings = Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, work_dir=str(work), job_workers=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def worker(served: TestClient) -> JobWorker:
    """A worker running jobs on the app's loop, driven by the test (``run_once``)."""
    app = served.app
    loop = served.portal.call(asyncio.get_running_loop)
    return JobWorker(app.state.job_store, ModelJobRunner(app, loop), "test-worker", lease_s=60)


@pytest.fixture(scope="module")
def store(served: TestClient) -> JobStore:
    return served.app.state.job_store


def submit(served: TestClient, model: str, data: bytes, query: str = "", **headers: str):
    response = served.post(f"/v1/models/{model}/jobs{query}", content=data, headers={**DICOM, **headers})
    assert response.status_code == 202, response.text
    return response


def without_request_specifics(body: dict) -> dict:
    return {key: value for key, value in body.items() if key not in ("request_id", "timings_ms")}


def test_a_job_answers_202_with_its_location_and_is_queued(served: TestClient, real_ct_files, store: JobStore) -> None:
    response = submit(served, CLASSIFIER, real_ct_files["CT_small"].read_bytes())
    body = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{body['id']}"
    assert (body["state"], body["model"], body["source"], body["format"], body["attempts"]) == ("queued", CLASSIFIER, "rest", "json", 0)
    assert body["calling_ae"] is None  # only a job of a series received over DIMSE has a sender AE
    assert body["study_uid"] and body["series_uid"]  # read from the upload, for the filters
    job = store.get(body["id"])
    assert sorted(path.name for path in Path(job.input_dir).iterdir()) == ["0000.dcm", "parts.json"]
    assert (Path(job.input_dir) / "0000.dcm").read_bytes() == real_ct_files["CT_small"].read_bytes()


def test_a_jobs_json_result_equals_the_synchronous_answer(served: TestClient, worker: JobWorker, real_ct_files) -> None:
    data = real_ct_files["693_UNCI"].read_bytes()
    job_id = submit(served, CLASSIFIER, data).json()["id"]
    assert served.get(f"/v1/jobs/{job_id}/result").json()["code"] == "job_not_finished"
    assert served.get(f"/v1/jobs/{job_id}/result").status_code == 409
    while (done := worker.run_once()) is not None and done.id != job_id:
        pass
    status = served.get(f"/v1/jobs/{job_id}").json()
    assert status["state"] == "done" and status["result_url"] == f"/v1/jobs/{job_id}/result"
    assert {"wait", "receive", "decode", "preprocess", "infer", "postprocess", "total"} <= set(status["timings_ms"])

    result = served.get(f"/v1/jobs/{job_id}/result")
    synchronous = served.post(f"/v1/models/{CLASSIFIER}/predict", content=data, headers=DICOM)
    assert result.status_code == 200 and result.headers["content-type"] == "application/json"
    assert without_request_specifics(result.json()) == without_request_specifics(synchronous.json())
    assert result.json()["request_id"] == job_id
    assert served.get(f"/v1/jobs/{job_id}/result?format=png").status_code == 406


def test_a_jobs_binary_result_is_byte_equal_to_the_synchronous_answer(served: TestClient, worker: JobWorker, real_ct_files) -> None:
    data = real_ct_files["CT_small"].read_bytes()
    job_id = submit(served, SEGMENTER, data, "?format=png").json()["id"]
    while (done := worker.run_once()) is not None and done.id != job_id:
        pass
    result = served.get(f"/v1/jobs/{job_id}/result", headers={"Accept": "image/png"})
    synchronous = served.post(f"/v1/models/{SEGMENTER}/predict?format=png", content=data, headers=DICOM)
    assert synchronous.status_code == 200 and result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    assert result.content == synchronous.content
    assert served.get(f"/v1/jobs/{job_id}/result", headers={"Accept": "application/json"}).json()["code"] == "not_acceptable"


def test_a_job_on_broken_dicom_fails_with_the_code_predict_answers(served: TestClient, worker: JobWorker) -> None:
    job_id = submit(served, CLASSIFIER, b"DICM" * 100).json()["id"]
    synchronous = served.post(f"/v1/models/{CLASSIFIER}/predict", content=b"DICM" * 100, headers=DICOM)
    while (done := worker.run_once()) is not None and done.id != job_id:
        pass
    status = served.get(f"/v1/jobs/{job_id}").json()
    assert status["state"] == "failed" and status["attempts"] == 1  # a client error is not retried
    assert status["error"]["code"] == synchronous.json()["code"]
    result = served.get(f"/v1/jobs/{job_id}/result")
    assert (result.status_code, result.json()["code"]) == (synchronous.status_code, synchronous.json()["code"])


def test_unknown_jobs_and_models_are_404(served: TestClient) -> None:
    for path in ("/v1/jobs/" + "0" * 32, "/v1/jobs/" + "0" * 32 + "/result"):
        response = served.get(path)
        assert (response.status_code, response.json()["code"]) == (404, "job_not_found")
    response = served.post("/v1/models/no_such_model/jobs", content=b"DICM", headers=DICOM)
    assert (response.status_code, response.json()["code"]) == (404, "model_not_found")


def test_an_idempotency_key_returns_the_same_job(served: TestClient, real_ct_files, store: JobStore) -> None:
    data = real_ct_files["CTImageStorage"].read_bytes()
    first = submit(served, CLASSIFIER, data, **{"Idempotency-Key": "order-42"})
    again = submit(served, CLASSIFIER, data, **{"Idempotency-Key": "order-42"})
    assert again.json()["id"] == first.json()["id"] and again.headers["Location"] == first.headers["Location"]
    assert [job.id for job in store.list() if job.idempotency_key == "order-42"] == [first.json()["id"]]
    refused = served.post(f"/v1/models/{CLASSIFIER}/jobs", content=data, headers={**DICOM, "Idempotency-Key": "with space"})
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_request")


def test_jobs_are_listed_by_filters(served: TestClient, real_ct_files) -> None:
    body = submit(served, SEGMENTER, real_ct_files["CT_small"].read_bytes()).json()
    listed = served.get("/v1/jobs", params={"model": SEGMENTER, "state": "queued", "source": "rest", "series_uid": body["series_uid"]}).json()["jobs"]
    assert body["id"] in [job["id"] for job in listed]
    assert all(job["model"] == SEGMENTER and job["state"] == "queued" for job in listed)
    assert served.get("/v1/jobs", params={"study_uid": "1.2.3.4.5.6.7.8.9"}).json()["jobs"] == []
    assert served.get("/v1/jobs", params={"state": "lost"}).status_code == 422


def test_a_worker_thread_runs_the_queue(served: TestClient, worker: JobWorker, real_ct_files, store: JobStore) -> None:
    job_id = submit(served, CLASSIFIER, real_ct_files["693_UNCI"].read_bytes()).json()["id"]
    thread_worker = JobWorker(store, worker.run, "thread-worker", lease_s=60, poll_s=0.05)
    thread_worker.start()
    try:
        deadline = time.monotonic() + 120
        while served.get(f"/v1/jobs/{job_id}").json()["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        thread_worker.stop(timeout_s=60)
    assert served.get(f"/v1/jobs/{job_id}").json()["state"] == "done"
    assert served.get(f"/v1/jobs/{job_id}/result").json()["model"] == CLASSIFIER


def _as_job_and_predicted(served: TestClient, worker: JobWorker, data: bytes, output_format: str):
    """The segmenter's answer to ``data`` in ``output_format`` twice: as a job's stored result
    (the job run to its end) and as predict's answer."""
    job_id = submit(served, SEGMENTER, data, f"?format={output_format}").json()["id"]
    while (done := worker.run_once()) is not None and done.id != job_id:
        pass
    result = served.get(f"/v1/jobs/{job_id}/result")
    return result, served.post(f"/v1/models/{SEGMENTER}/predict?format={output_format}", content=data, headers=DICOM)


def test_a_job_answers_the_structured_report_predict_answers(served: TestClient, worker: JobWorker, real_ct_files) -> None:
    import io

    import highdicom as hd

    result, synchronous = _as_job_and_predicted(served, worker, real_ct_files["CT_small"].read_bytes(), "sr")
    assert result.status_code == synchronous.status_code == 200 and result.headers["content-type"] == "application/dicom"
    from_job, from_predict = hd.sr.srread(io.BytesIO(result.content)), hd.sr.srread(io.BytesIO(synchronous.content))
    assert from_job.SOPInstanceUID == from_predict.SOPInstanceUID  # the same result, the same report
    tracking = lambda sr: [g.tracking_uid for g in sr.content.get_volumetric_roi_measurement_groups()]  # noqa: E731
    assert tracking(from_job) == tracking(from_predict)


def test_a_viewer_job_stores_the_viewer_answer_predict_gives(served: TestClient, worker: JobWorker, real_ct_files) -> None:
    """format=viewer as a job's format (the page's result viewer of a finished job): a 2D
    segmenter's one slice, byte-equal to predict's answer."""
    result, synchronous = _as_job_and_predicted(served, worker, real_ct_files["CT_small"].read_bytes(), "viewer")
    assert synchronous.status_code == 200 and result.status_code == 200, result.text
    assert result.headers["content-type"] == "application/json"
    assert result.content == synchronous.content
    body = result.json()
    assert body["shape"] == [1, 128, 128] and [s["index"] for s in body["slices"]] == [0] and body["default_slice"] == 0
