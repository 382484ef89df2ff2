"""The delivery sender end to end over a real store and dcmtk's storescp: a destination that is
down is retried with its backoff and gets the outputs once it is back; attempts are bounded and
end in the dead-letter list; what cannot be sent is dead-lettered at once with its code."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from devtools.processes import free_port
from jobs.db import database_url, make_engine
from jobs.delivery import DeliveryStore, DeliveryWorker, DimseDestination, RetryPolicy, Send
from jobs.store import JobStore

from ..conftest import Clock

SOURCES = [Path(get_testdata_file("CT_small.dcm")), Path(get_testdata_file("MR_small.dcm"))]


@pytest.fixture
def stores(tmp_path: Path, clock: Clock):
    engine = make_engine(database_url(tmp_path))
    yield JobStore(engine, clock=clock), DeliveryStore(engine, clock=clock)
    engine.dispose()


def finished_job(jobs: JobStore, tmp_path: Path, destination: str = "pacs") -> list[Path]:
    """A done job whose SEG and SR (two real DICOM files) go to ``destination``."""
    outputs = tmp_path / "outputs"
    outputs.mkdir(exist_ok=True)
    files = {name: outputs / f"{name}.dcm" for name in ("seg", "sr")}
    for source, path in zip(SOURCES, files.values(), strict=True):
        shutil.copy(source, path)
    job, _ = jobs.submit("m", "dimse", str(tmp_path / "spool"), sends=[Send(destination=destination, outputs=["seg", "sr"])])
    jobs.claim("w", 60)
    jobs.complete(job.id, "w", str(tmp_path / "result"), "application/json", {}, {k: str(v) for k, v in files.items()})
    return list(files.values())


def worker(deliveries: DeliveryStore, port: int, retry: RetryPolicy, seen: list) -> DeliveryWorker:
    pacs = DimseDestination(kind="dimse", ae_title="STORESCP", host="127.0.0.1", port=port, timeout_s=3, retry=retry)
    return DeliveryWorker(deliveries, {"pacs": pacs}, "sender", on_attempt=lambda d, outcome, code, s: seen.append((outcome, code)))


def test_a_destination_down_for_a_while_gets_the_outputs_once_it_is_back(stores, tmp_path: Path, clock: Clock, start_storescp) -> None:
    jobs, deliveries = stores
    files = finished_job(jobs, tmp_path)
    port, seen = free_port(), []
    sender = worker(deliveries, port, RetryPolicy(max_attempts=5, backoff_s=30, max_backoff_s=300), seen)
    sender.run_once()
    sender.run_once()
    clock.advance(30)
    sender.run_once()
    [delivery] = deliveries.list()
    assert seen == [("retry", "destination_unreachable"), ("retry", "destination_unreachable")]
    assert delivery.state == "pending" and delivery.attempts == 2 and delivery.next_attempt_at == clock.now + timedelta(seconds=60)
    assert sender.run_once() is None  # not due before its backoff is over
    received = start_storescp(port)
    clock.advance(60)
    sender.run_once()
    assert deliveries.get(delivery.id).state == "delivered" and seen[-1] == ("delivered", None)
    assert sorted(pydicom.dcmread(p).SOPInstanceUID for p in received.iterdir()) == sorted(pydicom.dcmread(p).SOPInstanceUID for p in files)


def test_attempts_are_bounded_and_end_in_the_dead_letter_list(stores, tmp_path: Path, clock: Clock) -> None:
    jobs, deliveries = stores
    finished_job(jobs, tmp_path)
    seen: list = []
    sender = worker(deliveries, free_port(), RetryPolicy(max_attempts=3, backoff_s=1), seen)
    for _ in range(5):
        sender.run_once()
        clock.advance(10)
    [delivery] = deliveries.list()
    assert [outcome for outcome, _ in seen] == ["retry", "retry", "failed_export"]
    assert (delivery.state, delivery.attempts, delivery.error_code) == ("failed_export", 3, "destination_unreachable")


def test_a_destination_no_longer_in_the_routes_file_is_dead_lettered(stores, tmp_path: Path) -> None:
    jobs, deliveries = stores
    finished_job(jobs, tmp_path, destination="old-pacs")
    seen: list = []
    worker(deliveries, free_port(), RetryPolicy(), seen).run_once()
    assert seen == [("failed_export", "destination_unknown")]


def test_outputs_removed_before_sending_are_dead_lettered(stores, tmp_path: Path) -> None:
    jobs, deliveries = stores
    for path in finished_job(jobs, tmp_path):
        path.unlink()
    seen: list = []
    worker(deliveries, free_port(), RetryPolicy(), seen).run_once()
    assert seen == [("failed_export", "output_missing")]
    assert "seg.dcm, sr.dcm" in deliveries.list()[0].error_message
