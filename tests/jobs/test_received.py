"""The record of received instances and series: one transaction per instance, idempotent
resends, and series assembly by silence, maximum age and expected count, with timers that are
rows in the database (a new store over the same database finds the same due series). On SQLite
and on a real PostgreSQL (``database_url`` of ``tests/jobs/conftest.py``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jobs.db import make_engine
from jobs.received import COMPLETE, RECEIVING, ROUTED, ReceivedStore

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def seconds(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


@pytest.fixture
def store(database_url: str) -> ReceivedStore:
    return ReceivedStore(make_engine(database_url))


def record(store: ReceivedStore, tmp_path: Path, sop: str, series: str = "1.2.3", at: float = 0.0, **extra) -> bool:
    path = tmp_path / "spool" / series / f"{sop}.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)
    return store.record_instance(
        sop_instance_uid=sop, series_uid=series, study_uid="1.2", path=path, size_bytes=10,
        calling_ae="PACS", called_ae="MEDSERVE", transfer_syntax="1.2.840.10008.1.2.1",
        modality="CT", received_at=seconds(at), **extra,
    )


def test_an_instance_is_recorded_with_its_series(store: ReceivedStore, tmp_path: Path) -> None:
    assert record(store, tmp_path, "1.2.3.1", at=0)
    assert record(store, tmp_path, "1.2.3.2", at=4)
    series = store.series("1.2.3")
    assert series is not None
    assert (series.instances, series.state, series.modality, series.calling_ae) == (2, RECEIVING, "CT", "PACS")
    assert (series.first_received_at, series.last_received_at) == (seconds(0), seconds(4))
    assert store.instances_of("1.2.3") == [tmp_path / "spool/1.2.3/1.2.3.1.dcm", tmp_path / "spool/1.2.3/1.2.3.2.dcm"]


def test_a_resend_is_idempotent_and_its_second_file_is_removed(store: ReceivedStore, tmp_path: Path) -> None:
    assert record(store, tmp_path, "1.2.3.1")
    assert not record(store, tmp_path, "1.2.3.1", at=1)  # same path: the recorded file stays
    assert (tmp_path / "spool/1.2.3/1.2.3.1.dcm").exists()
    assert not record(store, tmp_path, "1.2.3.1", series="9.9", at=2)  # another path: removed
    assert not (tmp_path / "spool/9.9/1.2.3.1.dcm").exists()
    assert store.series("1.2.3").instances == 1
    assert store.series("9.9") is None
    assert store.has_instance("1.2.3.1") and not store.has_instance("1.2.3.2")


def test_a_series_is_due_after_the_silence_timeout(store: ReceivedStore, tmp_path: Path) -> None:
    record(store, tmp_path, "1.2.3.1", at=0)
    record(store, tmp_path, "1.2.3.2", at=5)
    assert store.due_series(seconds(14.9), silence_s=10, max_age_s=3600) == []
    assert [s.series_uid for s in store.due_series(seconds(15), silence_s=10, max_age_s=3600)] == ["1.2.3"]


def test_a_series_that_never_falls_silent_is_due_at_its_maximum_age(store: ReceivedStore, tmp_path: Path) -> None:
    for k in range(0, 70, 5):
        record(store, tmp_path, f"1.2.3.{k + 1}", at=k)
    assert store.due_series(seconds(59), silence_s=10, max_age_s=60) == []
    assert [s.series_uid for s in store.due_series(seconds(66), silence_s=10, max_age_s=60)] == ["1.2.3"]


def test_a_series_is_due_when_it_holds_its_expected_count(store: ReceivedStore, tmp_path: Path) -> None:
    record(store, tmp_path, "1.2.3.1", at=0, expected_instances=2)
    assert store.due_series(seconds(1), silence_s=10, max_age_s=60) == []
    record(store, tmp_path, "1.2.3.2", at=1)
    due = store.due_series(seconds(1), silence_s=10, max_age_s=60)
    assert [(s.series_uid, s.instances, s.expected_instances) for s in due] == [("1.2.3", 2, 2)]


def test_marked_series_are_no_longer_due_and_a_late_instance_reopens_them(store: ReceivedStore, tmp_path: Path) -> None:
    record(store, tmp_path, "1.2.3.1", at=0)
    assert store.mark("1.2.3", COMPLETE, expected=RECEIVING)
    assert not store.mark("1.2.3", COMPLETE, expected=RECEIVING)  # a second closer loses
    assert store.series("1.2.3").completed_at is not None
    assert store.due_series(seconds(100), silence_s=10, max_age_s=60) == []
    store.mark("1.2.3", ROUTED)
    record(store, tmp_path, "1.2.3.2", at=200)
    series = store.series("1.2.3")
    assert (series.state, series.instances, series.completed_at) == (RECEIVING, 2, None)
    with pytest.raises(ValueError):
        store.mark("1.2.3", "lost")


def test_timers_survive_a_restart(database_url: str, tmp_path: Path) -> None:
    url = database_url
    first = ReceivedStore(make_engine(url))
    record(first, tmp_path, "1.2.3.1", at=0)
    first.engine.dispose()
    restarted = ReceivedStore(make_engine(url))
    assert [s.series_uid for s in restarted.due_series(seconds(10), silence_s=10, max_age_s=3600)] == ["1.2.3"]
    assert restarted.instances_of("1.2.3") == [tmp_path / "spool/1.2.3/1.2.3.1.dcm"]


def test_the_calling_ae_of_series_and_of_studies_is_looked_up_for_the_jobs_view(store: ReceivedStore, tmp_path: Path) -> None:
    """A series' sender is the AE its first instance came with; a study's, its series' senders
    (several sorted and joined); what was not received here is absent."""
    record(store, tmp_path, "1.2.3.1", series="1.2.3")
    record(store, tmp_path, "1.2.3.2", series="1.2.3")
    store.record_instance(
        sop_instance_uid="1.2.4.1", series_uid="1.2.4", study_uid="1.2", path=tmp_path / "x.dcm", size_bytes=10,
        calling_ae="MODALITY1", called_ae="MEDSERVE", transfer_syntax="1.2.840.10008.1.2.1", received_at=seconds(1),
    )
    by_series, by_study = store.calling_aes(["1.2.3", "1.2.4", "9.9"], ["1.2", "9.8"])
    assert by_series == {"1.2.3": "PACS", "1.2.4": "MODALITY1"}
    assert by_study == {"1.2": "MODALITY1, PACS"}
    assert store.calling_aes() == ({}, {})
