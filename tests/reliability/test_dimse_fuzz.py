"""The fuzz corpus over DIMSE (:mod:`fuzz.dimse`): the mutated data sets the HTTP campaign sends
are C-STOREd to a receiver; each gets a status, the receiver stays up, nothing is half-written,
and whatever it acknowledged is whole in its spool."""

from __future__ import annotations

import tempfile
import time

import pytest
from pynetdicom import _config

from dimse.echo import echo
from fuzz.dimse import run_dimse_campaign
from preprocessing import open_instance

#: Statuses the receiver answers (README, "DICOM node").
KNOWN = {"0x0000", "0xA700", "0xA701", "0xA900", "0xA901", "0xC001", "0xC002"}
CASES = 300


@pytest.fixture
def receiver(tmp_path):
    from dimse.config import DimseSettings
    from dimse.server import DimseServer

    saved = (_config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir)
    server = DimseServer(DimseSettings(work_dir=tmp_path / "work", dimse_port=0, dimse_host="127.0.0.1", dimse_series_silence_s=3600)).start()
    try:
        yield server
    finally:
        server.stop()
        _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = saved


def test_every_mutated_data_set_gets_a_status_and_the_receiver_survives(receiver) -> None:
    outcome = run_dimse_campaign(receiver.port, CASES)
    assert outcome.sent >= CASES * 0.8, outcome  # most cases are data sets (not ZIPs or empty bodies)
    assert outcome.aborted == [], outcome.aborted  # a status for every C-STORE, never a dropped association
    assert set(outcome.statuses) <= KNOWN, outcome.statuses
    assert outcome.statuses["0x0000"] > 0 and sum(v for k, v in outcome.statuses.items() if k != "0x0000") > 0, outcome.statuses
    assert echo("127.0.0.1", receiver.port)
    time.sleep(0.2)
    assert not list((receiver.spool / ".incoming").iterdir())
    for path in receiver.spool.rglob("*.dcm"):  # every acknowledged instance is whole and readable
        assert open_instance(path.read_bytes()).header.SOPInstanceUID == path.stem
    print(f"{outcome.sent} cases: {dict(outcome.statuses)}, {outcome.context_refused} refused at association, {outcome.unsendable} not sendable")
