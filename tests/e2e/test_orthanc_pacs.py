"""Orthanc as the hospital PACS (issue 15): a CT study stored in a real Orthanc (Debian
``orthanc``, started here on free loopback ports with its own configuration) is pushed to
medserve by Orthanc's own REST call ``POST /modalities/medserve/store``. Orthanc's C-STORE SCU
sends it to the receiver (AE ``MEDSERVE``), which assembles the series after its silence
timeout; the gateway's router sends CT from ``PACS`` to the 3D segmenter; a job worker runs it on
the real Triton; the job's result equals what predict answers for the same files.

Orthanc forwards an instance in the transfer syntax it stored when the receiver accepts it, so
RLE Lossless and JPEG 2000 Lossless studies arrive compressed, are spooled as they came and
decoded when the job runs.
Without Orthanc the test is skipped locally (``make test`` installs it) and fails under CI."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from devtools.orthanc import ORTHANC, start_orthanc, stop_orthanc
from .conftest import running_receiver

pytestmark = pytest.mark.e2e

SEG_3D = "ct_nodule_segmenter_3d"
PACS_AE = "PACS"


def _orthanc_binary() -> None:
    if ORTHANC is None:
        message = "Orthanc is not installed (Debian package orthanc; make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def node(triton, tmp_path: Path):
    """A receiver and a gateway over one work directory, routing CT from PACS to the 3D
    segmenter, and an Orthanc that knows the receiver as ``medserve``."""
    from gateway.config import Settings
    from gateway.main import create_app

    _orthanc_binary()
    work = tmp_path / "work"
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"routes:\n  - {{name: chest-ct, match: {{modality: [CT], calling_ae: [{PACS_AE}]}}, models: [{SEG_3D}]}}\n")
    settings = Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, work_dir=str(work), routes=str(routes), routing_poll_s=0.2)
    with running_receiver(work) as receiver:
        orthanc = start_orthanc(tmp_path / "orthanc", PACS_AE, {"medserve": ("MEDSERVE", "127.0.0.1", receiver.port)})
        try:
            with TestClient(create_app(settings), raise_server_exceptions=False) as client:
                yield client, receiver, orthanc
        finally:
            stop_orthanc(orthanc)


def write_series(folder: Path, transfer_syntax: str) -> list[Path]:
    """A real 24-slice chest CT series (96², 2 mm) with one nodule per slice, in ``transfer_syntax``."""
    from devtools.testdata import chest_ct_series, write_series

    return write_series(chest_ct_series(seed=5, transfer_syntax=transfer_syntax), folder)


def _wait_for_jobs(client: TestClient, series_uid: str, timeout_s: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    jobs: list[dict] = []
    while time.monotonic() < deadline:
        jobs = client.get("/v1/jobs", params={"series_uid": series_uid}).json()["jobs"]
        if jobs and all(job["state"] in ("done", "failed") for job in jobs):
            return jobs
        time.sleep(0.3)
    raise AssertionError(f"jobs of the series not finished after {timeout_s} s: {jobs}")


@pytest.mark.parametrize(
    "transfer_syntax", [ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless], ids=["explicit-little", "rle-lossless", "jpeg2000-lossless"]
)
def test_a_study_orthanc_pushes_is_received_routed_run_and_answered_as_predict_would(node, tmp_path: Path, transfer_syntax: str) -> None:
    client, receiver, orthanc = node
    paths = write_series(tmp_path / "series", transfer_syntax)
    stored = [orthanc.rest("POST", "/instances", path.read_bytes(), "application/dicom") for path in paths]
    assert {answer["Status"] for answer in stored} == {"Success"}
    [study_id] = {answer["ParentStudy"] for answer in stored}

    pushed = orthanc.rest("POST", "/modalities/medserve/store", json.dumps({"Resources": [study_id], "Synchronous": True}).encode())
    assert (pushed["InstancesCount"], pushed["FailedInstancesCount"]) == (24, 0), pushed

    header = pydicom.dcmread(paths[0], stop_before_pixels=True)
    [job] = _wait_for_jobs(client, header.SeriesInstanceUID)
    assert (job["state"], job["model"], job["source"]) == ("done", SEG_3D, "dimse"), job
    received = [pydicom.dcmread(path, stop_before_pixels=True) for path in receiver.spool.rglob("*.dcm")]
    assert received and {ds.file_meta.TransferSyntaxUID for ds in received} == {transfer_syntax}
    assert {ds.SOPInstanceUID for ds in received} == {pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID for path in paths}

    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 200, result.text
    files = [("files", (path.name, path.read_bytes(), "application/dicom")) for path in paths]
    direct = client.post(f"/v1/models/{SEG_3D}/predict", files=files)
    assert direct.status_code == 200, direct.text
    strip = lambda body: {k: v for k, v in body.items() if k not in ("request_id", "timings_ms")}  # noqa: E731
    assert strip(result.json()) == strip(direct.json())
    assert result.json()["grid"]["shape"][0] == 24
    assert receiver.store.series(header.SeriesInstanceUID).state == "routed"
