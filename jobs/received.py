"""What the DICOM node has received: one row per instance, one per series, and the rules that
say when a series is complete.

An instance is recorded only after its file is durable in the spool (:mod:`dimse.spool`), in
one transaction with its series, so that a receiver killed at any moment leaves either both or
neither. A series is *due* (complete) when no instance came for ``silence_s`` seconds (the
"stable age" of Orthanc and mercure), when its first instance is older than ``max_age_s`` (a
modality that trickles forever), or when it holds the count its headers announced. The timers
are the rows' timestamps, not state in memory: a restarted receiver finds the same due series.

The expected count is (0020,1209) *Number of Series Related Instances* when an instance carries
it, else (0020,1002) *Images in Acquisition* (exact for the common one-acquisition series; a
series of several acquisitions closes early at the first one's count, and its later instances
reopen it). Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import DateTime, Engine, Integer, String, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base

__all__ = [
    "COMPLETE",
    "RECEIVING",
    "ROUTED",
    "SERIES_STATES",
    "UNROUTED",
    "ReceivedInstance",
    "ReceivedSeries",
    "ReceivedStore",
    "SeriesRecord",
]

#: A series still taking instances.
RECEIVING = "receiving"
#: Assembled: due by silence, age or count; the router takes it from here.
COMPLETE = "complete"
#: At least one model was chosen for it.
ROUTED = "routed"
#: No rule matched: recorded, then cleaned up.
UNROUTED = "unrouted"
SERIES_STATES = (RECEIVING, COMPLETE, ROUTED, UNROUTED)

_UID = String(64)  # (0008,0018) and friends are UI: at most 64 characters
_AE = String(16)  # AE titles are at most 16 characters
_TEXT = String(64)  # LO / CS values the router matches on


class ReceivedInstance(Base):
    """One stored instance: where its file is and who sent it."""

    __tablename__ = "received_instances"

    sop_instance_uid: Mapped[str] = mapped_column(_UID, primary_key=True)
    series_uid: Mapped[str] = mapped_column(_UID, index=True)
    study_uid: Mapped[str] = mapped_column(_UID)
    path: Mapped[str] = mapped_column(String(1024))
    bytes: Mapped[int] = mapped_column(Integer)
    calling_ae: Mapped[str] = mapped_column(_AE)
    called_ae: Mapped[str] = mapped_column(_AE)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    transfer_syntax: Mapped[str] = mapped_column(_UID)


class ReceivedSeries(Base):
    """One series as it is assembled: counts, timestamps, the attributes routing reads, state."""

    __tablename__ = "received_series"

    series_uid: Mapped[str] = mapped_column(_UID, primary_key=True)
    study_uid: Mapped[str] = mapped_column(_UID, index=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(_TEXT)
    series_description: Mapped[str | None] = mapped_column(_TEXT)
    calling_ae: Mapped[str] = mapped_column(_AE)
    called_ae: Mapped[str] = mapped_column(_AE)
    first_received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    instances: Mapped[int] = mapped_column(Integer)
    expected_instances: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class SeriesRecord:
    """A snapshot of a :class:`ReceivedSeries` row, safe to hand to another thread."""

    series_uid: str
    study_uid: str
    modality: str | None
    body_part: str | None
    series_description: str | None
    calling_ae: str
    called_ae: str
    first_received_at: dt.datetime
    last_received_at: dt.datetime
    instances: int
    expected_instances: int | None
    state: str
    completed_at: dt.datetime | None

    @classmethod
    def of(cls, row: ReceivedSeries) -> "SeriesRecord":
        values = {name: getattr(row, name) for name in cls.__dataclass_fields__}
        for name in ("first_received_at", "last_received_at", "completed_at"):
            values[name] = _utc(values[name])
        return cls(**values)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ReceivedStore:
    """Received instances and series in the node's database (:func:`jobs.db.make_engine`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=[ReceivedInstance.__table__, ReceivedSeries.__table__])
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def record_instance(
        self,
        *,
        sop_instance_uid: str,
        series_uid: str,
        study_uid: str,
        path: Path,
        size_bytes: int,
        calling_ae: str,
        called_ae: str,
        transfer_syntax: str,
        modality: str | None = None,
        body_part: str | None = None,
        series_description: str | None = None,
        expected_instances: int | None = None,
        received_at: dt.datetime | None = None,
    ) -> bool:
        """Record a durable instance and count it in its series, in one transaction.

        False when the SOP Instance UID is recorded already (a resend: idempotent); the second
        copy's file is then removed unless it is the recorded file itself (a resend into the
        same spool path replaced it with the same instance). A new instance in a series that was
        complete reopens it (``receiving``), so that it is assembled again with all instances.
        """
        at = received_at or _now()
        with Session(self.engine) as session, session.begin():
            inserted = session.execute(
                self._insert(ReceivedInstance)
                .values(
                    sop_instance_uid=sop_instance_uid, series_uid=series_uid, study_uid=study_uid, path=str(path),
                    bytes=size_bytes, calling_ae=calling_ae, called_ae=called_ae, received_at=at,
                    transfer_syntax=transfer_syntax,
                )
                .on_conflict_do_nothing(index_elements=["sop_instance_uid"])
                .returning(ReceivedInstance.sop_instance_uid)  # rowcount is not reliable here on every driver
            ).scalar_one_or_none()
            if inserted is None:
                recorded = session.get(ReceivedInstance, sop_instance_uid)
                duplicate = Path(path)
                if recorded is not None and Path(recorded.path) != duplicate:
                    duplicate.unlink(missing_ok=True)
                return False
            insert = self._insert(ReceivedSeries).values(
                series_uid=series_uid, study_uid=study_uid, modality=_bounded(modality), body_part=_bounded(body_part),
                series_description=_bounded(series_description), calling_ae=calling_ae, called_ae=called_ae,
                first_received_at=at, last_received_at=at, instances=1, expected_instances=expected_instances,
                state=RECEIVING,
            )
            # one statement whether the series is new or not (a race between two receivers is
            # settled by the primary key, not by a read-then-write)
            series, new = ReceivedSeries.__table__.c, insert.excluded
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=["series_uid"],
                    set_={
                        "instances": series.instances + 1,
                        "last_received_at": case((series.last_received_at < new.last_received_at, new.last_received_at), else_=series.last_received_at),
                        "first_received_at": case((series.first_received_at > new.first_received_at, new.first_received_at), else_=series.first_received_at),
                        "expected_instances": case(
                            (series.expected_instances.is_(None), new.expected_instances),
                            (new.expected_instances > series.expected_instances, new.expected_instances),
                            else_=series.expected_instances,
                        ),
                        "state": RECEIVING,
                        "completed_at": None,
                    },
                )
            )
        return True

    def has_instance(self, sop_instance_uid: str) -> bool:
        """Whether the instance is recorded (a resend need not be written again)."""
        with Session(self.engine) as session:
            return session.get(ReceivedInstance, sop_instance_uid) is not None

    def due_series(self, now: dt.datetime, silence_s: float, max_age_s: float) -> list[SeriesRecord]:
        """Series still ``receiving`` that are complete at ``now``: silent for ``silence_s``
        seconds, or first received more than ``max_age_s`` seconds ago, or holding their
        expected count. Oldest first."""
        quiet_since = now - dt.timedelta(seconds=silence_s)
        started_before = now - dt.timedelta(seconds=max_age_s)
        query = (
            select(ReceivedSeries)
            .where(ReceivedSeries.state == RECEIVING)
            .where(
                or_(
                    ReceivedSeries.last_received_at <= quiet_since,
                    ReceivedSeries.first_received_at <= started_before,
                    ReceivedSeries.instances >= ReceivedSeries.expected_instances,
                )
            )
            .order_by(ReceivedSeries.first_received_at)
        )
        with Session(self.engine) as session:
            return [SeriesRecord.of(row) for row in session.scalars(query)]

    def mark(self, series_uid: str, state: str, *, expected: str | None = None) -> bool:
        """Set a series' state (``complete`` also stamps ``completed_at``). With ``expected``,
        only a series in that state changes (two receivers closing the same series: one wins).
        Returns whether a row changed."""
        if state not in SERIES_STATES:
            raise ValueError(f"unknown series state {state!r}; one of {', '.join(SERIES_STATES)}")
        statement = update(ReceivedSeries).where(ReceivedSeries.series_uid == series_uid)
        if expected is not None:
            statement = statement.where(ReceivedSeries.state == expected)
        values: dict[str, object] = {"state": state}
        if state == COMPLETE:
            values["completed_at"] = _now()
        with Session(self.engine) as session, session.begin():
            return bool(session.execute(statement.values(**values)).rowcount)

    def in_state(self, state: str, limit: int = 100) -> list[SeriesRecord]:
        """Series in ``state``, the longest-completed (then oldest) first: what the router takes up."""
        if state not in SERIES_STATES:
            raise ValueError(f"unknown series state {state!r}; one of {', '.join(SERIES_STATES)}")
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ReceivedSeries).where(ReceivedSeries.state == state)
                .order_by(ReceivedSeries.completed_at, ReceivedSeries.first_received_at).limit(limit)
            ).all()
            return [SeriesRecord.of(row) for row in rows]

    def series(self, series_uid: str) -> SeriesRecord | None:
        with Session(self.engine) as session:
            row = session.get(ReceivedSeries, series_uid)
            return SeriesRecord.of(row) if row is not None else None

    def calling_aes(self, series_uids: Iterable[str] = (), study_uids: Iterable[str] = ()) -> tuple[dict[str, str], dict[str, str]]:
        """Who sent what, for the jobs' public view: the calling AE title of each of ``series_uids``
        (the one its first instance came with), and of each of ``study_uids`` its series' titles
        (one, or several sorted and joined by ", " when its series came from different senders).
        A UID that was not received here (or whose rows are gone) is absent. Two queries."""
        series_ids, study_ids = sorted(set(series_uids)), sorted(set(study_uids))
        by_series: dict[str, str] = {}
        by_study: dict[str, set[str]] = {}
        with Session(self.engine) as session:
            if series_ids:
                query = select(ReceivedSeries.series_uid, ReceivedSeries.calling_ae).where(ReceivedSeries.series_uid.in_(series_ids))
                by_series = {uid: ae for uid, ae in session.execute(query)}
            if study_ids:
                query = select(ReceivedSeries.study_uid, ReceivedSeries.calling_ae).where(ReceivedSeries.study_uid.in_(study_ids))
                for uid, ae in session.execute(query):
                    by_study.setdefault(uid, set()).add(ae)
        return by_series, {uid: ", ".join(sorted(aes)) for uid, aes in by_study.items()}

    def instances_of(self, series_uid: str) -> list[Path]:
        """The spool files of a series' recorded instances, in the order they were received."""
        query = (
            select(ReceivedInstance.path)
            .where(ReceivedInstance.series_uid == series_uid)
            .order_by(ReceivedInstance.received_at, ReceivedInstance.sop_instance_uid)
        )
        with Session(self.engine) as session:
            return [Path(p) for p in session.scalars(query)]


def _bounded(value: str | None) -> str | None:
    """A header value cut to its column (an over-long vendor value must not fail the store)."""
    if value is None:
        return None
    value = value.strip()
    return value[:64] or None
