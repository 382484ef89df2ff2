"""The ``jobs`` table and :class:`JobStore`: submit, claim under a lease, renew, complete, fail.

A job is one model run on one input (a REST upload, a STOW-RS request or a series received
over DIMSE). Its life::

    queued ──claim──> running ──complete──> done
      ▲                  │
      └──fail(retryable, attempts < max_attempts) / lease expired
                         └──fail(otherwise) / lease expired at max_attempts──> failed

A worker holds a running job by a lease (``lease_owner``, ``lease_expires_at``); a worker that
dies stops renewing it, and once it has expired the next :meth:`JobStore.claim` of any worker
takes the job again (counting one more attempt). Exactly one worker gets a job: PostgreSQL
locks the candidate row with ``SELECT ... FOR UPDATE SKIP LOCKED`` (other workers skip to the
next row instead of waiting), SQLite serialises writers by ``BEGIN IMMEDIATE``
(:func:`jobs.db.make_engine`). Every state change is conditional on the caller still holding
the lease, so a worker whose lease was lost cannot overwrite its successor's outcome.

Times are UTC (stored naive-UTC so that SQLite and PostgreSQL read back alike); the store's
clock is injectable so that lease expiry is tested without waiting.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Literal

from sqlalchemy import JSON, Engine, Index, Integer, String, Text, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, UTCDateTime
from .delivery.destinations import Send
from .delivery.store import activate_deliveries, add_deliveries, cancel_deliveries, delete_deliveries, wanted_outputs

__all__ = ["Job", "JobState", "JobStore", "LEASE_EXPIRED", "SOURCES", "STATES"]

JobState = Literal["queued", "running", "done", "failed"]
STATES: tuple[str, ...] = ("queued", "running", "done", "failed")
#: Where a job's input came from.
SOURCES: tuple[str, ...] = ("rest", "stow", "dimse")
#: The error code of a job whose worker stopped renewing its lease on its last attempt.
LEASE_EXPIRED = "lease_expired"
#: Longest stored error message (characters); messages never quote DICOM values.
MAX_MESSAGE_CHARS = 2000


class JobRow(Base):
    """One row of ``jobs``."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_created", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), index=True)
    source: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(8))
    output_format: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    input_dir: Mapped[str] = mapped_column(Text)
    result_path: Mapped[str | None] = mapped_column(Text)
    result_media_type: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(256), unique=True)
    study_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    series_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    timings_ms: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Job:
    """A job as read from the store (a snapshot: the row may have moved on since)."""

    id: str
    model: str
    source: str
    state: JobState
    output_format: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    max_attempts: int
    input_dir: str
    result_path: str | None
    result_media_type: str | None
    error_code: str | None
    error_message: str | None
    idempotency_key: str | None
    study_uid: str | None
    series_uid: str | None
    webhook_url: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None

    @classmethod
    def _of(cls, row: JobRow) -> Job:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _claimable(now: datetime):  # noqa: ANN202 - a SQL expression
    """Queued, or running under a lease that has expired."""
    return or_(JobRow.state == "queued", and_(JobRow.state == "running", JobRow.lease_expires_at < now))


class JobStore:
    """The jobs of one database, for any number of workers in any number of processes."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self._skip_locked = engine.dialect.name == "postgresql"

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def submit(
        self,
        model: str,
        source: str,
        input_dir: str,
        *,
        idempotency_key: str | None = None,
        study_uid: str | None = None,
        series_uid: str | None = None,
        webhook_url: str | None = None,
        output_format: str = "json",
        max_attempts: int = 3,
        job_id: str | None = None,
        sends: Sequence[Send] = (),
    ) -> tuple[Job, bool]:
        """A new queued job, ``(job, True)``; or, when ``idempotency_key`` names an existing
        job, ``(that job, False)`` as it is, whatever the other arguments say. ``job_id``
        (32 hex digits) when the caller has already named the job's folder by it. ``sends``:
        where its outputs go once it is done, recorded with it (:mod:`jobs.delivery.store`)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if idempotency_key is not None and (existing := self.by_idempotency_key(idempotency_key)) is not None:
            return existing, False
        now = self.clock()
        row = JobRow(
            id=job_id or uuid.uuid4().hex, model=model, source=source, state="queued", output_format=output_format,
            created_at=now, updated_at=now, started_at=None, finished_at=None, attempts=0, max_attempts=max_attempts,
            input_dir=str(input_dir), result_path=None, result_media_type=None, error_code=None, error_message=None,
            idempotency_key=idempotency_key, study_uid=study_uid, series_uid=series_uid, webhook_url=webhook_url,
            timings_ms={}, lease_owner=None, lease_expires_at=None,
        )
        try:
            with self._session() as session, session.begin():
                session.add(row)
                session.flush()  # the job before its deliveries
                add_deliveries(session, row.id, sends, now, study_uid)
        except IntegrityError:
            # another submitter inserted the same key between our look-up and insert
            existing = self.by_idempotency_key(idempotency_key) if idempotency_key is not None else None
            if existing is None:
                raise
            return existing, False
        return Job._of(row), True

    def by_idempotency_key(self, key: str) -> Job | None:
        """The job submitted with ``key``, if any."""
        with self._session() as session:
            row = session.scalars(select(JobRow).where(JobRow.idempotency_key == key)).one_or_none()
            return Job._of(row) if row is not None else None

    def claim(self, worker_id: str, lease_s: float) -> Job | None:
        """The oldest claimable job, now running under ``worker_id``'s lease of ``lease_s``
        seconds and counting one more attempt; None when there is none. An expired job that
        has used all its attempts is failed (``lease_expired``) on the way instead."""
        while True:
            now = self.clock()
            with self._session() as session, session.begin():
                query = select(JobRow).where(_claimable(now)).order_by(JobRow.created_at, JobRow.id).limit(1)
                if self._skip_locked:
                    query = query.with_for_update(skip_locked=True)
                row = session.scalars(query).one_or_none()
                if row is None:
                    return None
                if row.state == "running" and row.attempts >= row.max_attempts:
                    self._finish_failed(session, row, now, LEASE_EXPIRED, "the worker stopped renewing its lease on the last attempt")
                    continue
                row.state, row.attempts = "running", row.attempts + 1
                row.lease_owner, row.lease_expires_at = worker_id, now + timedelta(seconds=lease_s)
                row.started_at = row.updated_at = now
                return Job._of(row)

    def renew(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Extend ``worker_id``'s lease to ``lease_s`` seconds from now; False if it no
        longer holds the job (another worker claimed it after the lease expired)."""
        now = self.clock()
        with self.engine.begin() as connection:
            result = connection.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == "running", JobRow.lease_owner == worker_id)
                .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
            )
            return result.rowcount == 1

    def complete(
        self,
        job_id: str,
        worker_id: str,
        result_path: str,
        media_type: str,
        timings_ms: dict[str, float],
        outputs: Mapping[str, str] | None = None,
        output_errors: Mapping[str, str] | None = None,
    ) -> bool:
        """Mark the job done with its stored answer, and its deliveries pending with the
        ``outputs`` they send (format → file; ``output_errors``: format → why it could not be
        made); False (and nothing changed) if ``worker_id`` lost the lease."""
        now = self.clock()
        with self.engine.begin() as connection:
            result = connection.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == "running", JobRow.lease_owner == worker_id)
                .values(
                    state="done", result_path=str(result_path), result_media_type=media_type, timings_ms=dict(timings_ms),
                    error_code=None, error_message=None, finished_at=now, updated_at=now, lease_owner=None, lease_expires_at=None,
                )
            )
            if result.rowcount != 1:
                return False
            with Session(bind=connection) as session:
                activate_deliveries(session, job_id, outputs or {}, output_errors or {}, now)
                session.flush()
            return True

    def wanted_outputs(self, job_id: str) -> list[str]:
        """The output formats the job's deliveries send (to make beside its answer)."""
        with self._session() as session:
            return wanted_outputs(session, job_id)

    def fail(self, job_id: str, worker_id: str, code: str, message: str, timings_ms: dict[str, float], retryable: bool) -> Job:
        """Record an attempt's failure: back to queued while ``retryable`` and attempts are
        left, else failed. The job is returned as it now is (unchanged if ``worker_id`` had
        lost the lease)."""
        now = self.clock()
        with self._session() as session, session.begin():
            query = select(JobRow).where(JobRow.id == job_id)
            if self._skip_locked:
                query = query.with_for_update()
            row = session.scalars(query).one()
            if row.state != "running" or row.lease_owner != worker_id:
                return Job._of(row)
            row.timings_ms = dict(timings_ms)
            if retryable and row.attempts < row.max_attempts:
                row.state, row.error_code, row.error_message = "queued", code, message[:MAX_MESSAGE_CHARS]
                row.lease_owner = row.lease_expires_at = None
                row.updated_at = now
            else:
                self._finish_failed(session, row, now, code, message)
            return Job._of(row)

    @staticmethod
    def _finish_failed(session: Session, row: JobRow, now: datetime, code: str, message: str) -> None:
        row.state, row.error_code, row.error_message = "failed", code, message[:MAX_MESSAGE_CHARS]
        row.finished_at = row.updated_at = now
        row.lease_owner = row.lease_expires_at = None
        cancel_deliveries(session, row.id, now)

    def get(self, job_id: str) -> Job | None:
        with self._session() as session:
            row = session.get(JobRow, job_id)
            return Job._of(row) if row is not None else None

    def list(
        self,
        state: str | None = None,
        model: str | None = None,
        source: str | None = None,
        study_uid: str | None = None,
        series_uid: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs matching every filter given, newest first, at most ``limit``."""
        query = select(JobRow)
        for column, value in (
            (JobRow.state, state), (JobRow.model, model), (JobRow.source, source),
            (JobRow.study_uid, study_uid), (JobRow.series_uid, series_uid),
        ):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(JobRow.created_at.desc(), JobRow.id).limit(limit)
        with self._session() as session:
            return [Job._of(row) for row in session.scalars(query)]

    def counts_by_state(self) -> dict[str, int]:
        """Jobs in each state (every state present, zero when none)."""
        with self._session() as session:
            counts = {state: count for state, count in session.execute(select(JobRow.state, func.count()).group_by(JobRow.state))}
        return {state: counts.get(state, 0) for state in STATES}

    def oldest_queued_age_s(self) -> float | None:
        """Seconds since the oldest queued job was submitted; None when the queue is empty."""
        with self._session() as session:
            oldest = session.scalar(select(func.min(JobRow.created_at)).where(JobRow.state == "queued"))
        if oldest is None:
            return None
        if oldest.tzinfo is None:  # an aggregate bypasses the column type on some backends
            oldest = oldest.replace(tzinfo=UTC)
        return (self.clock() - oldest).total_seconds()

    def finished_before(self, cutoff: datetime) -> list[Job]:
        """Done or failed jobs that finished before ``cutoff`` (retention)."""
        query = select(JobRow).where(JobRow.state.in_(("done", "failed")), JobRow.finished_at < cutoff).order_by(JobRow.finished_at)
        with self._session() as session:
            return [Job._of(row) for row in session.scalars(query)]

    def input_in_use(self, input_dir: str) -> bool:
        """Whether any job still names ``input_dir`` (one received series routed to several
        models is several jobs on one folder)."""
        with self._session() as session:
            return session.scalar(select(func.count()).where(JobRow.input_dir == str(input_dir))) > 0

    def delete(self, job_id: str) -> bool:
        """Remove the job's record and its deliveries' (its files are the caller's); False if there was none."""
        with self._session() as session, session.begin():
            delete_deliveries(session, job_id)
            return session.execute(delete(JobRow).where(JobRow.id == job_id)).rowcount == 1
