"""Study grouping on the DICOM node (issue 15): dcmtk's ``storescu`` pushes a CT and a PET
series of one study; a rule with ``group_by: study`` sends the whole study to the CT + PET
fusion model once both series are complete and the study's silence is over; the one job's
result equals what predict answers for the same two instances."""

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

FUSION = "ct_pet_nodule_classifier"
STRIP = ("request_id", "timings_ms")


@pytest.fixture
def node(triton, tmp_path: Path):
    """A receiver and a gateway over one work directory, grouping CT studies for the fusion model."""
    from devtools.zoo.datasets import write_fusion_set
    from gateway.config import Settings
    from gateway.main import create_app

    work = tmp_path / "work"
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"routes:\n  - {{name: ct-pet, match: {{modality: [CT]}}, models: [{FUSION}], group_by: study}}\n")
    write_fusion_set(tmp_path / "cases", count=2, seed=77)
    case = tmp_path / "cases" / "case_0001"  # an avid case: CT and PET slices of one study, each its own series
    settings = Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, work_dir=str(work), routes=str(routes), routing_poll_s=0.2)
    with running_receiver(work) as receiver, TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, receiver, case


def test_a_ct_and_pet_study_grouped_by_rule_is_one_fusion_job_answered_as_predict_would(node) -> None:
    client, receiver, case = node
    ct, pet = (pydicom.dcmread(case / name, stop_before_pixels=True) for name in ("ct.dcm", "pet.dcm"))
    assert ct.StudyInstanceUID == pet.StudyInstanceUID and ct.SeriesInstanceUID != pet.SeriesInstanceUID
    for name in ("pet.dcm", "ct.dcm"):  # two associations, as a modality sends its series one after the other
        sent = subprocess.run(["storescu", "-aet", "PACS", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port), str(case / name)],
                              capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr

    deadline = time.monotonic() + 120
    while not (jobs := client.get("/v1/jobs", params={"study_uid": ct.StudyInstanceUID}).json()["jobs"]) or jobs[0]["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, jobs
        time.sleep(0.3)
    [job] = jobs
    assert (job["state"], job["model"], job["source"], job["series_uid"]) == ("done", FUSION, "dimse", None), job
    assert {receiver.store.series(s.SeriesInstanceUID).state for s in (ct, pet)} == {"routed"}

    result = client.get(f"/v1/jobs/{job['id']}/result")
    direct = client.post(f"/v1/models/{FUSION}/predict",
                         files=[("file", (name, (case / name).read_bytes(), "application/dicom")) for name in ("ct.dcm", "pet.dcm")])
    assert result.status_code == 200 and direct.status_code == 200, (result.text, direct.text)
    strip = lambda body: {k: v for k, v in body.items() if k not in STRIP}  # noqa: E731
    assert strip(result.json()) == strip(direct.json())
    assert {p["label"] for p in result.json()["probabilities"]} >= {"avid_nodule"}
