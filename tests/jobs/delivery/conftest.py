"""Real DIMSE peers for the delivery tests: dcmtk's ``storescp``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


@pytest.fixture
def start_storescp(tmp_path: Path):
    """``start(port, *options)``: dcmtk's storescp (AE STORESCP) listening on ``port``, writing
    what it receives into a new folder it returns; every one started is stopped after the test."""
    if shutil.which("storescp") is None:
        pytest.skip("dcmtk is not installed (make test installs it)")
    started: list[subprocess.Popen] = []

    def start(port: int, *options: str) -> Path:
        folder = tmp_path / f"storescp-{len(started)}"
        folder.mkdir()
        process = subprocess.Popen(["storescp", *options, "-aet", "STORESCP", "-od", str(folder), str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return folder
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "storescp did not start"
                time.sleep(0.1)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)
