"""Deliveries live and die with their job, in the job's own transactions, on SQLite and on a
real PostgreSQL: waiting while it runs, pending with its outputs once it is done, cancelled
when it fails; a sender claims them under a lease, backs a destination off, dead-letters them,
and the API's retry brings a dead letter back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from jobs.delivery import DeliveryStore, Send
from jobs.engine import cleanup
from jobs.store import JobStore

from ..conftest import Clock


@pytest.fixture
def jobs(engine, clock: Clock) -> JobStore:
    return JobStore(engine, clock=clock)


@pytest.fixture
def deliveries(engine, clock: Clock) -> DeliveryStore:
    return DeliveryStore(engine, clock=clock)


SENDS = [Send(destination="pacs", outputs=["seg", "sr"]), Send(destination="archive", outputs=["sc"]), Send(destination="pacs", outputs=["sr", "sc"])]


def done_job(jobs: JobStore, outputs: dict[str, str], errors: dict[str, str] | None = None, sends=SENDS) -> str:
    job, _ = jobs.submit("m", "dimse", "/spool/s", study_uid="1.2.3", sends=sends)
    jobs.claim("w", 60)
    assert jobs.complete(job.id, "w", "/jobs/x/result", "application/json", {}, outputs, errors or {})
    return job.id


def test_a_job_submitted_with_sends_has_one_waiting_delivery_per_destination(jobs: JobStore, deliveries: DeliveryStore) -> None:
    job, _ = jobs.submit("m", "dimse", "/spool/s", study_uid="1.2.3", sends=SENDS)
    found = deliveries.for_jobs([job.id])[job.id]
    assert [(d.destination, d.outputs, d.state, d.study_uid) for d in found] == [
        ("pacs", ["seg", "sr", "sc"], "waiting", "1.2.3"), ("archive", ["sc"], "waiting", "1.2.3"),
    ]
    assert jobs.wanted_outputs(job.id) == ["seg", "sr", "sc"]
    assert deliveries.claim("sender", 60) is None  # nothing to send while the job runs


def test_the_same_idempotency_key_adds_no_second_delivery(jobs: JobStore, deliveries: DeliveryStore) -> None:
    first, _ = jobs.submit("m", "dimse", "/spool/s", idempotency_key="dimse:s:m", sends=SENDS)
    again, created = jobs.submit("m", "dimse", "/spool/s", idempotency_key="dimse:s:m", sends=SENDS)
    assert not created and again.id == first.id
    assert len(deliveries.list()) == 2


def test_a_done_job_makes_its_deliveries_pending_with_their_files(jobs: JobStore, deliveries: DeliveryStore, clock: Clock) -> None:
    job_id = done_job(jobs, {"seg": "/o/seg.dcm", "sr": "/o/sr.dcm", "sc": "/o/sc.dcm"})
    pacs, archive = deliveries.for_jobs([job_id])[job_id]
    assert pacs.state == "pending" and pacs.files == ["/o/seg.dcm", "/o/sr.dcm", "/o/sc.dcm"] and pacs.next_attempt_at == clock.now
    assert archive.state == "pending" and archive.files == ["/o/sc.dcm"]
    assert jobs.wanted_outputs(job_id) == []


def test_an_output_that_could_not_be_made_dead_letters_only_its_deliveries(jobs: JobStore, deliveries: DeliveryStore) -> None:
    job_id = done_job(jobs, {"sc": "/o/sc.dcm"}, {"seg": "output_unavailable: no Frame of Reference UID"})
    pacs, archive = deliveries.for_jobs([job_id])[job_id]
    assert (pacs.state, pacs.error_code) == ("failed_export", "output_unavailable")
    assert "seg: output_unavailable: no Frame of Reference UID" in pacs.error_message and "sr: not made" in pacs.error_message
    assert archive.state == "pending"
    assert jobs.get(job_id).state == "done"
    assert deliveries.retry(pacs.id) is None  # nothing to send again: its outputs were never made


def test_a_failed_job_cancels_its_deliveries(jobs: JobStore, deliveries: DeliveryStore) -> None:
    job, _ = jobs.submit("m", "dimse", "/spool/s", sends=SENDS, max_attempts=1)
    jobs.claim("w", 60)
    jobs.fail(job.id, "w", "invalid_dicom", "not DICOM", {}, retryable=False)
    assert {d.state for d in deliveries.for_jobs([job.id])[job.id]} == {"cancelled"}


def test_a_job_whose_last_lease_expired_cancels_its_deliveries(jobs: JobStore, deliveries: DeliveryStore, clock: Clock) -> None:
    job, _ = jobs.submit("m", "dimse", "/spool/s", sends=SENDS, max_attempts=1)
    jobs.claim("w", 10)
    clock.advance(11)
    assert jobs.claim("w2", 10) is None
    assert {d.state for d in deliveries.for_jobs([job.id])[job.id]} == {"cancelled"}


def test_a_sender_claims_a_due_delivery_once_under_a_lease(jobs: JobStore, deliveries: DeliveryStore, clock: Clock) -> None:
    done_job(jobs, {"seg": "/o/seg.dcm", "sr": "/o/sr.dcm", "sc": "/o/sc.dcm"}, sends=[SENDS[0]])
    claimed = deliveries.claim("sender-1", 30)
    assert claimed.state == "sending" and claimed.attempts == 1 and claimed.lease_owner == "sender-1"
    assert deliveries.claim("sender-2", 30) is None
    clock.advance(31)  # sender-1 died: its lease expired
    again = deliveries.claim("sender-2", 30)
    assert again.id == claimed.id and again.attempts == 2
    assert not deliveries.delivered(claimed.id, "sender-1")  # the lost lease records nothing
    assert deliveries.delivered(claimed.id, "sender-2")
    assert deliveries.get(claimed.id).state == "delivered" and deliveries.get(claimed.id).delivered_at == clock.now


def test_a_failed_attempt_waits_its_backoff_and_holds_its_destination(jobs: JobStore, deliveries: DeliveryStore, clock: Clock) -> None:
    for send in (SENDS[0], SENDS[0], SENDS[1]):  # two jobs to the PACS, then one to the archive
        done_job(jobs, {"seg": "/o/seg.dcm", "sr": "/o/sr.dcm", "sc": "/o/sc.dcm"}, sends=[send])
        clock.advance(1)
    first = deliveries.claim("sender", 30)
    assert first.destination == "pacs"  # the one due longest
    retry_at = clock.now + timedelta(seconds=20)
    assert deliveries.failed(first.id, "sender", "destination_unreachable", "no association", retry_at)
    assert deliveries.hold_destination(first.destination, retry_at) >= 1
    due_now = [deliveries.claim("sender", 30) for _ in range(3)]
    assert {d.destination for d in due_now if d is not None} == {"archive"}  # the other job's pacs delivery waits too
    clock.advance(21)
    assert deliveries.claim("sender", 30).destination == first.destination


def test_a_dead_letter_is_listed_and_retried_through_the_store(jobs: JobStore, deliveries: DeliveryStore, clock: Clock) -> None:
    done_job(jobs, {"seg": "/o/seg.dcm", "sr": "/o/sr.dcm", "sc": "/o/sc.dcm"}, sends=[SENDS[0]])
    claimed = deliveries.claim("sender", 30)
    deliveries.failed(claimed.id, "sender", "store_refused", "status 0xA900", None)
    assert [d.id for d in deliveries.list(state="failed_export")] == [claimed.id]
    assert deliveries.counts_by_state()["failed_export"] == 1
    retried = deliveries.retry(claimed.id)
    assert retried.state == "pending" and retried.attempts == 0 and retried.next_attempt_at == clock.now
    assert deliveries.retry(claimed.id) is None  # only a dead letter is retried


def test_retention_keeps_a_job_until_its_deliveries_are_finished(jobs: JobStore, deliveries: DeliveryStore, clock: Clock, tmp_path: Path) -> None:
    outputs = tmp_path / "job" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "seg.dcm").write_bytes(b"x")
    result = tmp_path / "job" / "result"
    result.write_bytes(b"{}")
    job, _ = jobs.submit("m", "dimse", str(tmp_path / "spool"), sends=[Send(destination="pacs", outputs=["seg"])])
    jobs.claim("w", 60)
    jobs.complete(job.id, "w", str(result), "application/json", {}, {"seg": str(outputs / "seg.dcm")})
    clock.advance(3600)
    assert cleanup(jobs, timedelta(minutes=1)) == 0 and jobs.get(job.id) is not None
    claimed = deliveries.claim("sender", 30)
    deliveries.delivered(claimed.id, "sender")
    assert cleanup(jobs, timedelta(minutes=1)) == 1
    assert jobs.get(job.id) is None and deliveries.list() == [] and not (tmp_path / "job").exists()
