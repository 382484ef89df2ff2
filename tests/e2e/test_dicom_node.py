"""The DICOM node end to end (issue 15): dcmtk's ``storescu`` pushes a CT series to the
receiver; the series is assembled after its silence timeout; the gateway's router routes it by
the rules into a job; a job worker runs it on the real Triton; its result equals what predict
answers for the same series. One work directory (spool and SQLite store) is shared, as
``make run`` shares it."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from .conftest import running_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")]

SEG_3D = "ct_nodule_segmenter_3d"


@pytest.fixture
def node(triton, tmp_path: Path):
    """A receiver and a gateway over one work directory, routing CT to the 3D segmenter."""
    from devtools.testdata import chest_ct_series, write_series
    from gateway.config import Settings
    from gateway.main import create_app

    work = tmp_path / "work"
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"routes:\n  - {{name: chest-ct, match: {{modality: [CT], calling_ae: [PACS]}}, models: [{SEG_3D}]}}\n")
    folder = tmp_path / "series"
    write_series(chest_ct_series(seed=3), folder)
    settings = Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, work_dir=str(work), routes=str(routes), routing_poll_s=0.2)
    with running_receiver(work) as receiver, TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, receiver, folder


def _wait_for_jobs(client: TestClient, series_uid: str, states: set[str], timeout_s: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = client.get("/v1/jobs", params={"series_uid": series_uid}).json()["jobs"]
        if jobs and all(job["state"] in states for job in jobs):
            return jobs
        time.sleep(0.3)
    raise AssertionError(f"jobs of the series not {states} after {timeout_s} s: {jobs}")


def test_a_series_pushed_by_storescu_is_routed_run_and_answered_as_predict_would(node) -> None:
    client, receiver, folder = node
    sent = subprocess.run(["storescu", "-aet", "PACS", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(receiver.port), str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    series_uid = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    [job] = _wait_for_jobs(client, series_uid, {"done", "failed"})
    assert (job["state"], job["model"], job["source"]) == ("done", SEG_3D, "dimse"), job
    assert job["calling_ae"] == "PACS"  # storescu's -aet: who sent the series
    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 200, result.text
    files = [("files", (path.name, path.read_bytes(), "application/dicom")) for path in sorted(folder.iterdir())]
    direct = client.post(f"/v1/models/{SEG_3D}/predict", files=files)
    assert direct.status_code == 200, direct.text
    strip = lambda body: {k: v for k, v in body.items() if k not in ("request_id", "timings_ms")}  # noqa: E731
    assert strip(result.json()) == strip(direct.json())
    assert result.json()["grid"]["shape"][0] == 24
    assert receiver.store.series(series_uid).state == "routed"


def test_a_series_no_rule_matches_is_recorded_unrouted_and_its_files_removed(node) -> None:
    client, receiver, folder = node
    sent = subprocess.run(["storescu", "-aet", "OTHER", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(receiver.port), str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    series_uid = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    deadline = time.monotonic() + 60
    while receiver.store.series(series_uid) is None or receiver.store.series(series_uid).state != "unrouted":
        assert time.monotonic() < deadline, receiver.store.series(series_uid)
        time.sleep(0.2)
    assert client.get("/v1/jobs", params={"series_uid": series_uid}).json()["jobs"] == []
    assert not any(path.suffix == ".dcm" for path in receiver.spool.rglob("*.dcm"))
