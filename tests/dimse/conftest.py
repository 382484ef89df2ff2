"""A receiver in this process on a free loopback port, over a fresh work directory, and
series of real CT instances written by :func:`devtools.dicomgen.write_ct_series`."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pynetdicom import _config

from devtools.dicomgen import write_ct_series
from dimse.config import DimseSettings
from dimse.server import DimseServer
from jobs.received import SeriesRecord

STORESCU = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "storescu"


class Receiver:
    """A started :class:`DimseServer` and the series it closed."""

    def __init__(self, server: DimseServer, completed: list[SeriesRecord]) -> None:
        self.server = server
        self.completed = completed

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def store(self):  # noqa: ANN201
        return self.server.store

    def wait_complete(self, count: int = 1, timeout_s: float = 30.0) -> list[SeriesRecord]:
        deadline = time.monotonic() + timeout_s
        while len(self.completed) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.completed


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    """``start_receiver(**settings)``: a receiver with these settings over it (the process
    globals it sets, pynetdicom's chunked receive and the temp directory, restored after)."""
    started: list[DimseServer] = []
    saved = (_config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir)

    def start(**settings: object) -> Receiver:
        values = {"work_dir": tmp_path / "work", "dimse_port": 0, "dimse_host": "127.0.0.1", "dimse_assembly_poll_s": 0.1}
        values.update(settings)
        completed: list[SeriesRecord] = []
        server = DimseServer(DimseSettings(**values), on_series_complete=completed.append).start()
        started.append(server)
        return Receiver(server, completed)

    yield start
    for server in started:
        server.stop()
    _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = saved


@pytest.fixture
def ct_series(tmp_path: Path) -> Callable[..., list[Path]]:
    """``ct_series(name, slices, transfer_syntax=...)``: a real 64×64 CT series in a folder."""

    def write(name: str, slices: int = 5, **options: object) -> list[Path]:
        rng = np.random.default_rng(slices)
        volume = rng.integers(-1000, 1500, size=(slices, 64, 64)).astype(np.float32)
        return write_ct_series(tmp_path / name, volume, spacing_mm=(2.5, 0.7, 0.7), **options)

    return write


def run(command: list[str], timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
