"""The uvicorn servers of the bench, each a :class:`devtools.processes.ServerProcess` (a
session of its own, a log file, stopped as a group) on a free loopback port: the baseline
(:class:`BaselineProcess`) and the gateway (:func:`gateway_process`, as production starts it).

Their own session makes each server's pid its process group, which is how the bench counts
the CPU of a server and all its workers. Every server runs without the thread caps of this
environment (``OMP_NUM_THREADS`` and the like): at the machine's defaults, as deployed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from devtools.processes import GatewayProcess, ServerProcess, free_port

from .options import PROJECT_ROOT

BASELINE_APP = "benchmarks.baseline:create_app"
_THREAD_CAPS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def uncapped_env(**extra: str) -> dict[str, str]:
    """This environment without thread caps, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if k not in _THREAD_CAPS}, **extra}


class BaselineProcess(ServerProcess):
    """``uvicorn --factory benchmarks.baseline:create_app`` serving ``model`` from this
    checkout, one worker, logging to ``log``."""

    def __init__(self, model: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = uncapped_env(MEDSERVE_BASELINE_MODEL=model)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
        command = [sys.executable, "-m", "uvicorn", "--factory", BASELINE_APP, "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        super().__init__(f"baseline {model}", command, env=env, cwd=PROJECT_ROOT, log=log)

    def wait_healthy(self, timeout_s: float = 120.0) -> "BaselineProcess":
        self.wait_ready(f"{self.url}/healthz", timeout_s)
        return self


def gateway_process(triton_grpc_url: str, work: Path, workers: int, env: dict[str, str]) -> GatewayProcess:
    """A gateway of this checkout on ``triton_grpc_url`` with ``workers`` uvicorn workers and
    the extra settings ``env`` (``MEDSERVE_X``: value), logging under ``work``."""
    return GatewayProcess(triton_grpc_url, work, settings={"workers": str(workers)}, env=uncapped_env(**env))


def stop_servers(servers: Iterable[Any], log: Callable[[str], None]) -> None:
    """Stop every server (None entries skipped), logging a failure and going on with the others:
    one that will not stop must not leave the rest running."""
    for server in servers:
        if server is None:
            continue
        try:
            server.stop()
        except Exception as exc:  # keep stopping the others
            log(f"stopping {server.url}: {exc}")
