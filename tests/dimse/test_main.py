"""``python -m dimse`` as ``make run`` starts it (:func:`devtools.run.dimse_receiver`): it
answers C-ECHO on its port, logs JSON lines without DICOM values, and stops on SIGTERM."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pydicom
import pytest

from devtools.processes import free_port
from devtools.run import dimse_receiver, wait_for_receiver

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")


def test_the_receiver_make_run_starts_serves_and_logs_json_without_dicom_values(tmp_path: Path, ct_series) -> None:  # noqa: ANN001
    port = free_port()
    receiver = dimse_receiver(tmp_path / "node", "127.0.0.1", port)
    receiver.log = tmp_path / "dimse.log"
    receiver.start()
    try:
        assert wait_for_receiver(receiver, "127.0.0.1", port, "MEDSERVE", 60, threading.Event())
        files = ct_series("ct", slices=2)
        sent = subprocess.run(["storescu", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(port), str(files[0].parent)], capture_output=True, timeout=60)
        assert sent.returncode == 0
        ds = pydicom.dcmread(files[0])
        assert len(list((tmp_path / "node" / "spool" / ds.StudyInstanceUID / ds.SeriesInstanceUID).glob("*.dcm"))) == 2
    finally:
        receiver.stop()
    assert receiver.returncode == 0
    lines = [json.loads(line) for line in receiver.log.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"] == "dimse receiver listening" and line["port"] == port for line in lines)
    text = receiver.log.read_text()
    for value in (ds.PatientName, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert str(value) not in text


def test_medserve_dimse_runs_the_receiver(tmp_path: Path) -> None:
    """``medserve dimse`` is the same receiver, for an installed product."""
    import os
    import sys

    from devtools.processes import CHECKOUT, ServerProcess

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT), MEDSERVE_WORK_DIR=str(tmp_path), MEDSERVE_DIMSE_PORT=str(port), MEDSERVE_DIMSE_HOST="127.0.0.1")
    receiver = ServerProcess("medserve dimse", [sys.executable, "-m", "medserve.cli", "dimse"], env=env, cwd=CHECKOUT, log=tmp_path / "log")
    receiver.start()
    try:
        assert wait_for_receiver(receiver, "127.0.0.1", port, "MEDSERVE", 60, threading.Event())
        assert subprocess.run(["echoscu", "-aec", "MEDSERVE", "127.0.0.1", str(port)], timeout=30).returncode == 0
    finally:
        receiver.stop()
    assert receiver.returncode == 0
