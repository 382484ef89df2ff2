"""Durable before success, end to end: ``python -m dimse`` is killed with SIGKILL while dcmtk's
``storescu`` sends it a 300-instance CT series. After a restart every instance storescu saw
acknowledged is in the spool, whole, and in the store; partial files are gone and never
counted; a resend completes the series, and the restarted receiver closes it after the silence
timeout, from the timers in the store."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from devtools.dicomgen import write_ct_series
from devtools.processes import CHECKOUT, ServerProcess, free_port, signal_group
from dimse.echo import wait_for_echo
from jobs.db import database_url, make_engine
from jobs.received import COMPLETE, RECEIVING, ReceivedStore

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")

SLICES = 300
KILL_AFTER = 100  # acknowledged instances before the receiver is killed


def receiver_process(work_dir: Path, port: int) -> ServerProcess:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(CHECKOUT), MEDSERVE_WORK_DIR=str(work_dir), MEDSERVE_DIMSE_PORT=str(port), MEDSERVE_DIMSE_HOST="127.0.0.1",
        MEDSERVE_DIMSE_SERIES_SILENCE_S="2", MEDSERVE_DIMSE_ASSEMBLY_POLL_S="0.2",
    )
    return ServerProcess("dimse", [sys.executable, "-m", "dimse"], env=env, cwd=CHECKOUT, log=work_dir / "dimse.log")


def started(process: ServerProcess, port: int) -> ServerProcess:
    process.start()
    assert wait_for_echo("127.0.0.1", port, timeout_s=60, alive=lambda: process.alive), process.log_tail()
    return process


def send_until_killed(folder: Path, port: int, receiver: ServerProcess) -> set[Path]:
    """storescu -v sends the folder; after KILL_AFTER successes the receiver gets SIGKILL. The
    files whose C-STORE response storescu logged as Success."""
    storescu = subprocess.Popen(
        ["storescu", "-v", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(port), str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    acknowledged: set[Path] = set()
    sending: Path | None = None
    for line in storescu.stderr:
        if line.startswith("I: Sending file: "):
            sending = Path(line.removeprefix("I: Sending file: ").strip())
        elif "Received Store Response (Success)" in line and sending is not None:
            acknowledged.add(sending)
            if len(acknowledged) == KILL_AFTER:
                signal_group(receiver.pid, signal.SIGKILL)
    storescu.wait(timeout=120)
    return acknowledged


def test_sigkill_mid_series_loses_no_acknowledged_instance(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    files = write_ct_series(tmp_path / "series", rng.integers(-1000, 1000, (SLICES, 128, 128)).astype(np.float32), spacing_mm=(1.0, 0.8, 0.8))
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    study_uid, series_uid = first.StudyInstanceUID, first.SeriesInstanceUID
    sop_of = {path: pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID for path in files}
    work, port = tmp_path / "work", free_port()
    receiver = started(receiver_process(work, port), port)

    acknowledged = send_until_killed(tmp_path / "series", port, receiver)
    receiver.stop()
    assert receiver.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(acknowledged) < SLICES  # killed mid-transfer

    receiver = started(receiver_process(work, port), port)  # a new process over the same work directory
    try:
        store = ReceivedStore(make_engine(database_url(work)))
        spool = work / "spool"
        assert not list((spool / ".incoming").iterdir())  # partial files swept at start
        recorded = {path.name.removesuffix(".dcm"): path for path in store.instances_of(series_uid)}
        assert {sop_of[path] for path in acknowledged} <= set(recorded)
        assert store.series(series_uid).instances == len(recorded)
        for sop, path in recorded.items():  # whole: every recorded file parses with all its pixels
            assert path.parent == spool / study_uid / series_uid
            ds = pydicom.dcmread(path)
            assert ds.SOPInstanceUID == sop and ds.pixel_array.shape == (128, 128)
        assert not list(spool.rglob("*.part")) and not list(spool.rglob("tmp*"))

        resent = subprocess.run(["storescu", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(port), str(tmp_path / "series")], capture_output=True, text=True, timeout=300)
        assert resent.returncode == 0, resent.stderr
        assert store.series(series_uid).instances == SLICES
        assert len(list((spool / study_uid / series_uid).glob("*.dcm"))) == SLICES

        deadline = time.monotonic() + 60
        while store.series(series_uid).state == RECEIVING and time.monotonic() < deadline:
            time.sleep(0.2)
        series = store.series(series_uid)
        assert (series.state, series.instances) == (COMPLETE, SLICES)
        assert series.completed_at - series.last_received_at >= dt.timedelta(seconds=2)
    finally:
        receiver.stop()
