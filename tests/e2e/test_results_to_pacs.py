"""Results back to the hospital (issue 16), the whole loop against a real PACS: Orthanc (Debian
``orthanc`` with its DICOMweb plugin, on loopback) stores a real CT series that dcmtk's
``storescu`` sends it, pushes the study to medserve's AE, medserve routes it to the 3D demo
segmenter on the real Triton, and the job's SEG and SR arrive back in Orthanc in the same study
— by C-STORE or by STOW-RS — referencing instances Orthanc holds. With Orthanc down for a while
the results arrive once it is back; with medserve killed between receipt and delivery nothing
is lost and nothing is sent twice.

Without Orthanc the tests are skipped locally (``make test`` installs it) and fail under CI."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from fastapi.testclient import TestClient

from devtools.orthanc import DICOMWEB_PLUGIN, ORTHANC, Orthanc, start_orthanc, stop_orthanc
from .conftest import running_receiver

pytestmark = pytest.mark.e2e

SEG_3D = "ct_nodule_segmenter_3d"
PACS_AE = "PACS"
OUTPUTS = ["seg", "sr"]


def _require_peers() -> None:
    missing = [name for name, present in (("orthanc", ORTHANC), ("orthanc-dicomweb", DICOMWEB_PLUGIN.exists()), ("dcmtk", shutil.which("storescu")))
               if not present]
    if missing:
        message = f"not installed: {', '.join(missing)} (Debian packages; make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def routes_file(folder: Path, orthanc: Orthanc, kind: str) -> Path:
    """CT from the PACS goes to the 3D segmenter; its SEG and SR go back to that Orthanc, the
    destination ``pacs-<kind>``, by C-STORE (``kind`` dimse) or STOW-RS (dicomweb), retried after 1 s, 2 s, 2 s..."""
    destination = (
        {"kind": "dimse", "ae_title": PACS_AE, "host": "127.0.0.1", "port": orthanc.dicom_port, "timeout_s": 5}
        if kind == "dimse" else {"kind": "dicomweb", "url": orthanc.dicomweb_url, "timeout_s": 10}
    )
    document = {
        "destinations": {f"pacs-{kind}": {**destination, "retry": {"max_attempts": 50, "backoff_s": 1, "max_backoff_s": 2}}},
        "routes": [{"name": "chest-ct", "match": {"modality": ["CT"], "calling_ae": [PACS_AE]}, "models": [SEG_3D],
                    "send": [{"destination": f"pacs-{kind}", "outputs": OUTPUTS}]}],
    }
    path = folder / "routes.yaml"
    path.write_text(json.dumps(document))  # YAML is a superset of JSON
    return path


@pytest.fixture
def peers(tmp_path: Path):
    """A DICOM receiver over ``tmp_path/work`` and an Orthanc that knows it as ``medserve``."""

    _require_peers()
    with running_receiver(tmp_path / "work") as receiver:
        orthanc = start_orthanc(tmp_path / "orthanc", PACS_AE, {"medserve": ("MEDSERVE", "127.0.0.1", receiver.port)}, dicomweb=True)
        try:
            yield receiver, orthanc
        finally:
            if orthanc.process.poll() is None:
                stop_orthanc(orthanc)


def gateway_settings(triton, tmp_path: Path, routes: Path, **overrides):
    from gateway.config import Settings

    return Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, work_dir=str(tmp_path / "work"), routes=str(routes),
                    routing_poll_s=0.2, delivery_poll_s=0.2, **overrides)


def store_and_push(tmp_path: Path, orthanc: Orthanc) -> pydicom.Dataset:
    """A real 24-slice chest CT series: into Orthanc by dcmtk's storescu, then pushed by Orthanc
    to medserve; the first slice's header."""
    from devtools.testdata import chest_ct_series, write_series

    folder = tmp_path / "series"
    write_series(chest_ct_series(seed=16), folder)
    subprocess.run(["storescu", "-aet", "MODALITY", "-aec", PACS_AE, "127.0.0.1", str(orthanc.dicom_port), *map(str, sorted(folder.iterdir()))],
                   check=True, capture_output=True, timeout=120)
    header = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    study_id = orthanc.rest("POST", "/tools/lookup", header.StudyInstanceUID.encode())[0]["ID"]
    pushed = orthanc.rest("POST", "/modalities/medserve/store", json.dumps({"Resources": [study_id], "Synchronous": True}).encode())
    assert (pushed["InstancesCount"], pushed["FailedInstancesCount"]) == (24, 0), pushed
    return header


def wait_for(get_job, until, timeout_s: float = 180.0) -> dict:
    """Poll ``get_job()`` (the series' job as the API shows it, or None) until ``until(job)``."""
    deadline, job = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        job = get_job()
        if job is not None and until(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"not reached in {timeout_s} s: {job}")


def job_of(client_get, series_uid: str):
    def get() -> dict | None:
        jobs = client_get("/v1/jobs", {"series_uid": series_uid})["jobs"]
        return jobs[0] if jobs else None

    return get


def delivered(job: dict) -> bool:
    return job["export_state"] == "delivered"


def results_in_orthanc(orthanc: Orthanc, header: pydicom.Dataset) -> dict[str, list[pydicom.Dataset]]:
    """The study's objects in Orthanc by modality, read back from Orthanc's own files."""
    [study] = orthanc.rest("POST", "/tools/lookup", header.StudyInstanceUID.encode())
    found: dict[str, list[pydicom.Dataset]] = {}
    for instance in orthanc.rest("GET", f"/studies/{study['ID']}/instances"):
        with urllib.request.urlopen(f"http://127.0.0.1:{orthanc.http_port}/instances/{instance['ID']}/file", timeout=60) as response:
            ds = pydicom.dcmread(io.BytesIO(response.read()))
        found.setdefault(ds.Modality, []).append(ds)
    return found


def assert_results_reference_what_orthanc_holds(orthanc: Orthanc, header: pydicom.Dataset) -> None:
    """One SEG and one SR in the source study; the SEG references the CT instances and the SR
    the SEG and the CT instances — every one held by Orthanc."""
    found = results_in_orthanc(orthanc, header)
    assert sorted((modality, len(objects)) for modality, objects in found.items()) == [("CT", 24), ("SEG", 1), ("SR", 1)]
    held = {ds.SOPInstanceUID for objects in found.values() for ds in objects}
    [seg], [sr] = found["SEG"], found["SR"]
    seg_refs = {item.ReferencedSOPInstanceUID for series in seg.ReferencedSeriesSequence for item in series.ReferencedInstanceSequence}
    assert seg_refs == {ds.SOPInstanceUID for ds in found["CT"]}
    sr_refs = {item.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
               for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    assert seg.SOPInstanceUID in sr_refs and sr_refs <= held
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == header.StudyInstanceUID
    groups = hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_volumetric_roi_measurement_groups()
    assert groups, "the SR reports no finding"
    for group in groups:  # each finding measured on a segment of the SEG Orthanc holds
        assert group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert set(group.referenced_segment.referenced_segment_numbers) <= {s.SegmentNumber for s in seg.SegmentSequence}


@pytest.mark.parametrize("kind", ["dimse", "dicomweb"], ids=["c-store", "stow-rs"])
def test_seg_and_sr_of_a_study_orthanc_pushed_arrive_back_in_orthanc(triton, peers, tmp_path: Path, kind: str) -> None:
    from gateway.main import create_app

    receiver, orthanc = peers
    settings = gateway_settings(triton, tmp_path, routes_file(tmp_path, orthanc, kind))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        header = store_and_push(tmp_path, orthanc)
        job = wait_for(job_of(lambda path, params: client.get(path, params=params).json(), header.SeriesInstanceUID), delivered)
        [delivery] = job["deliveries"]
        assert (job["state"], delivery["destination"], delivery["outputs"], delivery["attempts"]) == ("done", f"pacs-{kind}", OUTPUTS, 1), job
        metrics = client.get("/metrics").text
        assert f'medserve_delivery_attempts_total{{destination="pacs-{kind}",outcome="delivered"}} 1.0' in metrics
        assert 'medserve_deliveries{state="delivered"} 1.0' in metrics
    assert_results_reference_what_orthanc_holds(orthanc, header)


def test_results_arrive_after_the_pacs_comes_back(triton, peers, tmp_path: Path) -> None:
    from gateway.main import create_app

    receiver, orthanc = peers
    settings = gateway_settings(triton, tmp_path, routes_file(tmp_path, orthanc, "dimse"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        header = store_and_push(tmp_path, orthanc)
        stop_orthanc(orthanc)  # the PACS goes down before the results are ready
        get = job_of(lambda path, params: client.get(path, params=params).json(), header.SeriesInstanceUID)
        down = wait_for(get, lambda job: job["deliveries"] and job["deliveries"][0]["attempts"] >= 2)
        assert down["state"] == "done" and down["export_state"] == "pending"
        assert down["deliveries"][0]["error"]["code"] == "destination_unreachable"
        back = start_orthanc(orthanc.folder, PACS_AE, ports=(orthanc.http_port, orthanc.dicom_port), dicomweb=True)
        orthanc.process = back.process
        job = wait_for(get, delivered)
        assert job["deliveries"][0]["attempts"] >= 3
    assert_results_reference_what_orthanc_holds(orthanc, header)


def test_a_gateway_killed_between_receipt_and_delivery_loses_nothing_and_sends_nothing_twice(triton, peers, tmp_path: Path) -> None:
    from devtools.processes import GatewayProcess

    receiver, orthanc = peers
    routes = routes_file(tmp_path, orthanc, "dimse")
    env = {"routes": str(routes), "routing_poll_s": "0.2", "delivery_poll_s": "0.2", "work_dir": str(tmp_path / "work"), "model_cache_ttl_s": "0"}

    def get_json(url: str):
        return lambda path, params: json.loads(urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=30).read())

    first = GatewayProcess(triton.grpc_url, tmp_path, settings={**env, "delivery_workers": "0"})  # receives and runs, sends nothing
    first.start()
    first.wait_healthy()
    try:
        header = store_and_push(tmp_path, orthanc)
        pending = wait_for(job_of(get_json(first.url), header.SeriesInstanceUID), lambda job: job["state"] == "done")
        assert pending["export_state"] == "pending" and pending["deliveries"][0]["state"] == "pending"
    finally:
        os.killpg(os.getpgid(first.process.pid), signal.SIGKILL)  # as the OOM killer would
        first.process.wait(timeout=30)
    assert "SEG" not in results_in_orthanc(orthanc, header)

    second = GatewayProcess(triton.grpc_url, tmp_path, settings=env)
    second.start()
    second.wait_healthy()
    try:
        job = wait_for(job_of(get_json(second.url), header.SeriesInstanceUID), delivered)
    finally:
        second.stop()
    assert job["id"] == pending["id"] and job["attempts"] == 1  # the model ran once
    assert job["deliveries"][0]["attempts"] == 1
    assert_results_reference_what_orthanc_holds(orthanc, header)
