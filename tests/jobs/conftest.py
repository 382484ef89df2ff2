"""Database fixtures of the job tests: SQLite in a temporary folder, and a real PostgreSQL 15
server started for the session (``initdb`` into a temporary folder, ``pg_ctl`` on loopback and
a free port, stopped at the end), one fresh database per test.

Without PostgreSQL's binaries the PostgreSQL cases are skipped, saying why; with ``CI`` set in
the environment they fail instead, so that CI never passes on SQLite alone.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from datetime import UTC, datetime, timedelta
from typing import Iterator

import pytest

from devtools.processes import free_port

#: Debian installs the server binaries outside PATH, one folder per major version.
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _pg_bin() -> Path | None:
    for folder in sorted(glob.glob(PG_BIN_GLOB), reverse=True):
        if (Path(folder) / "pg_ctl").exists() and (Path(folder) / "initdb").exists():
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """``postgresql+psycopg://`` URL (without a database name) of a server for this session."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        reason = f"PostgreSQL server binaries not found ({PG_BIN_GLOB}/pg_ctl, or pg_ctl on PATH): install Debian's postgresql"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: the job store must be tested on PostgreSQL)")
        pytest.skip(reason)
    # not under pytest's tmp folder: that one is private to the user running the tests (0700)
    root = Path(tempfile.mkdtemp(prefix="medserve-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]), check=True, capture_output=True)
    options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start"]),
        check=True, capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    import psycopg

    name = "test_" + uuid.uuid4().hex[:12]
    admin = postgres_server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{postgres_server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database on each backend the node supports."""
    if request.param == "sqlite":
        from jobs.db import database_url

        return database_url(tmp_path)
    return request.getfixturevalue("postgres_url")


class Clock:
    """A clock the test moves by hand (the stores' injectable ``clock``)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(database_url: str):
    """An engine over an empty database of each backend, every table of the node created."""
    from jobs.db import make_engine

    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()
