"""One database for the node: the SQLAlchemy engine and the declarative base every table of
:mod:`jobs` derives from.

SQLite is opened in WAL mode with ``synchronous=FULL`` (a committed record survives a power
cut, which "durable before success" needs) and a busy timeout, so that a receiver and a worker
in two processes wait for each other instead of failing; PostgreSQL is reached through psycopg 3
(``postgresql+psycopg://...``).
"""

from __future__ import annotations

from pathlib import Path

from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "DEFAULT_DATABASE_FILE", "UTCDateTime", "database_url", "make_engine"]

#: The SQLite file under the work directory when no database URL is configured.
DEFAULT_DATABASE_FILE = "medserve.db"
#: How long (ms) SQLite waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    """The declarative base of every table of the node."""


class UTCDateTime(TypeDecorator):
    """An aware UTC ``datetime`` in Python, naive UTC in the database (SQLite has no zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("job times must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        return None if value is None else value.replace(tzinfo=UTC)


def database_url(work_dir: Path, configured: str | None = None) -> str:
    """``configured`` (``MEDSERVE_DATABASE_URL``), else SQLite under ``work_dir``. A bare
    ``postgresql://`` URL is given psycopg 3 as its driver."""
    if configured:
        if configured.startswith("postgresql://") or configured.startswith("postgres://"):
            return "postgresql+psycopg://" + configured.split("://", 1)[1]
        return configured
    return f"sqlite:///{(Path(work_dir) / DEFAULT_DATABASE_FILE).resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with every table of the node created."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:  # noqa: ANN001 - DB-API connection
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection) -> None:  # noqa: ANN001
            # take the write lock at BEGIN: a claim read-then-update cannot interleave with another
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        engine = create_engine(url, pool_pre_ping=True)
    from . import received, store  # noqa: F401
    from .delivery import store as _deliveries  # noqa: F401  (every table of the node, whoever opens the database first)

    Base.metadata.create_all(engine)
    return engine
