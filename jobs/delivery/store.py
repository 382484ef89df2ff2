"""The ``deliveries`` table and :class:`DeliveryStore`: each job's outputs on their way to
each destination its route names.

A delivery is every output one job sends to one destination (a SEG and an SR to the PACS is
one delivery, retried as one). Its life::

    waiting ──job done──> pending ──claim──> sending ──stored──> delivered
       │         │  (an output could not     │
       │         │   be made)                └──failed──> pending (after the backoff) ... ──> failed_export
       │         └────────────────────────────────────────────────────────────────────────────^
       └──job failed──> cancelled                              failed_export ──retry (API)──> pending

Deliveries are written with their job, in the job's own transactions (:class:`jobs.JobStore`
calls :func:`add_deliveries`, :func:`activate_deliveries`, :func:`cancel_deliveries`): a job
is never done without its deliveries pending, nor submitted without them waiting. A sender
holds a delivery by a lease as a job worker holds a job; one whose lease expired is taken again
(an output stored twice keeps its SOP Instance UID, so a PACS keeps one copy). Times are UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Callable

from sqlalchemy import JSON, Engine, Index, Integer, String, Text, and_, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import Base, UTCDateTime
from .destinations import Send

__all__ = [
    "DELIVERY_STATES",
    "Delivery",
    "DeliveryStore",
    "activate_deliveries",
    "add_deliveries",
    "cancel_deliveries",
    "delete_deliveries",
    "wanted_outputs",
]

WAITING, PENDING, SENDING, DELIVERED, FAILED_EXPORT, CANCELLED = "waiting", "pending", "sending", "delivered", "failed_export", "cancelled"
DELIVERY_STATES: tuple[str, ...] = (WAITING, PENDING, SENDING, DELIVERED, FAILED_EXPORT, CANCELLED)
#: The states in which a delivery still has work to do (its job's files must stay).
OPEN_STATES: tuple[str, ...] = (WAITING, PENDING, SENDING)
#: The error code of a delivery whose job could not make one of its outputs.
OUTPUT_UNAVAILABLE = "output_unavailable"
_MAX_MESSAGE_CHARS = 2000


class DeliveryRow(Base):
    """One row of ``deliveries``."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_state_next", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    destination: Mapped[str] = mapped_column(String(64), index=True)
    outputs: Mapped[list[str]] = mapped_column(JSON)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order among the job's deliveries (its route's send order)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    files: Mapped[list[str]] = mapped_column(JSON, default=list)
    study_uid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Delivery:
    """A delivery as read from the store (a snapshot)."""

    id: str
    job_id: str
    destination: str
    outputs: list[str]
    state: str
    attempts: int
    files: list[str]
    study_uid: str | None
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    error_code: str | None
    error_message: str | None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None

    @classmethod
    def _of(cls, row: DeliveryRow) -> Delivery:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


# -- in the job's own transactions (jobs.store) ------------------------------------------------


def add_deliveries(session: Session, job_id: str, sends: Iterable[Send], now: datetime, study_uid: str | None) -> None:
    """One waiting delivery per destination of ``sends`` (their outputs merged, in order)."""
    merged: dict[str, list[str]] = {}
    for send in sends:
        outputs = merged.setdefault(send.destination, [])
        outputs.extend(output for output in send.outputs if output not in outputs)
    for position, (destination, outputs) in enumerate(merged.items()):
        session.add(
            DeliveryRow(
                id=uuid.uuid4().hex, job_id=job_id, destination=destination, outputs=outputs, position=position, state=WAITING, attempts=0, files=[],
                study_uid=study_uid, created_at=now, updated_at=now, next_attempt_at=None, delivered_at=None,
                error_code=None, error_message=None, lease_owner=None, lease_expires_at=None,
            )
        )


def activate_deliveries(session: Session, job_id: str, outputs: Mapping[str, str], output_errors: Mapping[str, str], now: datetime) -> None:
    """The job is done: each waiting delivery becomes pending with its outputs' files
    (``outputs``: format → path), or failed_export when one of them could not be made
    (``output_errors``: format → why)."""
    for row in session.scalars(select(DeliveryRow).where(DeliveryRow.job_id == job_id, DeliveryRow.state == WAITING)):
        missing = [output for output in row.outputs if output not in outputs]
        row.updated_at = now
        if missing:
            reasons = "; ".join(f"{output}: {output_errors.get(output, 'not made')}" for output in missing)
            row.state, row.error_code, row.error_message = FAILED_EXPORT, OUTPUT_UNAVAILABLE, reasons[:_MAX_MESSAGE_CHARS]
        else:
            row.state, row.files, row.next_attempt_at = PENDING, [outputs[output] for output in row.outputs], now


def cancel_deliveries(session: Session, job_id: str, now: datetime) -> None:
    """The job failed: nothing of it will be sent."""
    session.execute(
        update(DeliveryRow).where(DeliveryRow.job_id == job_id, DeliveryRow.state == WAITING).values(state=CANCELLED, updated_at=now)
    )


def delete_deliveries(session: Session, job_id: str) -> None:
    """Remove the job's deliveries (retention, with the job)."""
    session.execute(delete(DeliveryRow).where(DeliveryRow.job_id == job_id))


def wanted_outputs(session: Session, job_id: str) -> list[str]:
    """The outputs the job's waiting deliveries need, each once, in order."""
    wanted: list[str] = []
    for outputs in session.scalars(select(DeliveryRow.outputs).where(DeliveryRow.job_id == job_id, DeliveryRow.state == WAITING)):
        wanted.extend(output for output in outputs if output not in wanted)
    return wanted


# -- the senders' side -------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeliveryStore:
    """The deliveries of one database, for any number of senders in any number of processes."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine, self.clock = engine, clock
        self._skip_locked = engine.dialect.name == "postgresql"

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def claim(self, worker_id: str, lease_s: float) -> Delivery | None:
        """The pending delivery due longest, or one whose sender's lease expired, now
        ``sending`` under ``worker_id``'s lease and counting one more attempt; None when none is due."""
        now = self.clock()
        due = or_(
            and_(DeliveryRow.state == PENDING, DeliveryRow.next_attempt_at <= now),
            and_(DeliveryRow.state == SENDING, DeliveryRow.lease_expires_at < now),
        )
        with self._session() as session, session.begin():
            query = select(DeliveryRow).where(due).order_by(DeliveryRow.next_attempt_at, DeliveryRow.id).limit(1)
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True)
            row = session.scalars(query).one_or_none()
            if row is None:
                return None
            row.state, row.attempts, row.updated_at = SENDING, row.attempts + 1, now
            row.lease_owner, row.lease_expires_at = worker_id, now + timedelta(seconds=lease_s)
            return Delivery._of(row)

    def _finish(self, delivery_id: str, worker_id: str, **values: object) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, DeliveryRow.state == SENDING, DeliveryRow.lease_owner == worker_id)
                .values(updated_at=self.clock(), lease_owner=None, lease_expires_at=None, **values)
            )
            return result.rowcount == 1

    def delivered(self, delivery_id: str, worker_id: str) -> bool:
        """Every output is stored at the destination; False if ``worker_id`` lost the lease."""
        return self._finish(delivery_id, worker_id, state=DELIVERED, delivered_at=self.clock(), error_code=None, error_message=None)

    def failed(self, delivery_id: str, worker_id: str, code: str, message: str, retry_at: datetime | None) -> bool:
        """An attempt failed: pending again at ``retry_at``, or dead-lettered (``failed_export``)
        when None; False if ``worker_id`` lost the lease."""
        state = PENDING if retry_at is not None else FAILED_EXPORT
        return self._finish(
            delivery_id, worker_id, state=state, next_attempt_at=retry_at, error_code=code, error_message=message[:_MAX_MESSAGE_CHARS]
        )

    def hold_destination(self, destination: str, until: datetime) -> int:
        """Defer every pending delivery to ``destination`` to ``until`` at the earliest (it is
        down: one failed attempt backs off the destination, not only that delivery); how many."""
        with self.engine.begin() as connection:
            return connection.execute(
                update(DeliveryRow)
                .where(DeliveryRow.destination == destination, DeliveryRow.state == PENDING, DeliveryRow.next_attempt_at < until)
                .values(next_attempt_at=until)
            ).rowcount

    def retry(self, delivery_id: str) -> Delivery | None:
        """A dead-lettered delivery back to pending now, its attempts counted afresh; None
        when it is not dead-lettered (or does not exist)."""
        now = self.clock()
        with self._session() as session, session.begin():
            row = session.get(DeliveryRow, delivery_id)
            if row is None or row.state != FAILED_EXPORT or not row.files:
                return None
            row.state, row.attempts, row.next_attempt_at, row.updated_at = PENDING, 0, now, now
            return Delivery._of(row)

    def get(self, delivery_id: str) -> Delivery | None:
        with self._session() as session:
            row = session.get(DeliveryRow, delivery_id)
            return Delivery._of(row) if row is not None else None

    def list(self, state: str | None = None, destination: str | None = None, job_id: str | None = None, limit: int = 100) -> list[Delivery]:
        """Deliveries matching every filter given, newest first, at most ``limit``."""
        query = select(DeliveryRow)
        for column, value in ((DeliveryRow.state, state), (DeliveryRow.destination, destination), (DeliveryRow.job_id, job_id)):
            if value is not None:
                query = query.where(column == value)
        with self._session() as session:
            return [Delivery._of(row) for row in session.scalars(query.order_by(DeliveryRow.created_at.desc(), DeliveryRow.job_id, DeliveryRow.position).limit(limit))]

    def for_jobs(self, job_ids: Iterable[str]) -> dict[str, list[Delivery]]:
        """Each job's deliveries (in creation order), by job id."""
        ids = list(job_ids)
        found: dict[str, list[Delivery]] = {job_id: [] for job_id in ids}
        if ids:
            query = select(DeliveryRow).where(DeliveryRow.job_id.in_(ids)).order_by(DeliveryRow.created_at, DeliveryRow.position)
            with self._session() as session:
                for row in session.scalars(query):
                    found[row.job_id].append(Delivery._of(row))
        return found

    def counts_by_state(self) -> dict[str, int]:
        """Deliveries in each state (every state present, zero when none)."""
        with self._session() as session:
            counts = dict(session.execute(select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)).all())
        return {state: counts.get(state, 0) for state in DELIVERY_STATES}

    def has_open(self, job_id: str) -> bool:
        """Whether some delivery of the job still has work to do (its files must stay)."""
        with self._session() as session:
            query = select(func.count()).where(DeliveryRow.job_id == job_id, DeliveryRow.state.in_(OPEN_STATES))
            return session.scalar(query) > 0

