"""One uvicorn server of the bench (the baseline, or a gateway) in a session of its own, on a
free loopback port, logging to a file.

Its own session makes the server's pid its process group, which is how the bench counts the
CPU of the server and all its workers, and how it stops them together.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools.tritonserver import TritonPorts, stop_group

from .options import PROJECT_ROOT

GATEWAY_APP = "gateway.main:create_app"
BASELINE_APP = "benchmarks.baseline:create_app"


def free_port() -> int:
    return TritonPorts.free().http


def server_env(**extra: str) -> dict[str, str]:
    """This environment without thread caps (every server runs at the machine's defaults)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


class UvicornServer:
    """``uvicorn --factory <app>`` (the gateway: ``python -m gateway.server``) in its own
    session, logging to a file."""

    def __init__(self, app: str, log_file: Path, env: dict[str, str], workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        if app == GATEWAY_APP:  # as deployed: its launcher, which sets up metrics for several workers
            command = [sys.executable, "-m", "gateway.server"]
            env = {**env, "MEDSERVE_HOST": "127.0.0.1", "MEDSERVE_PORT": str(self.port), "MEDSERVE_WORKERS": str(workers)}
        else:
            command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
            if workers > 1:
                command += ["--workers", str(workers)]
        with open(log_file, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def wait_ready(self, path: str = "/healthz", timeout_s: float = 120.0) -> "UvicornServer":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.url} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if urllib.request.urlopen(self.url + path, timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.url}{path} not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_group(self.process)
