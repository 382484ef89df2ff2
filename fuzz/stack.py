"""A real stack to fuzz: tritonserver (medserve.tritonserver) over the demo repository and
the gateway as production starts it (``python -m gateway.server``), on free loopback ports,
JSON logs to files. The gateway's upload cap is :data:`UPLOAD_CAP_BYTES`, which the ZIP
bombs are sized against."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medserve.tritonserver import TritonPorts, TritonServer, stop_group

from .families.uploads import UPLOAD_CAP_BYTES

#: Settings of the fuzzed gateway (MEDSERVE_* variables).
GATEWAY_SETTINGS = {"MEDSERVE_MAX_UPLOAD_BYTES": str(UPLOAD_CAP_BYTES), "MEDSERVE_LOG_LEVEL": "info", "MEDSERVE_MODEL_CACHE_TTL_S": "5"}


class GatewayServer:
    """``python -m gateway.server`` in its own process group; stdout and stderr to ``log``."""

    def __init__(self, triton_grpc_url: str, work: Path, **settings: str) -> None:
        self.port = TritonPorts.free().http
        self.log = work / f"gateway-{self.port}.log"
        env = dict(os.environ, MEDSERVE_TRITON_GRPC_URL=triton_grpc_url, MEDSERVE_HOST="127.0.0.1", MEDSERVE_PORT=str(self.port))
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(GATEWAY_SETTINGS | settings)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "gateway.server"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gateway did not start:\n{self.log.read_text(errors='replace')[-4000:]}")

    def stop(self) -> None:
        stop_group(self.process)


@contextmanager
def fuzz_stack(repository: Path, work: Path) -> Iterator[tuple[TritonServer, list[GatewayServer]]]:
    """Triton and one gateway; the list grows when the runner restarts a dead gateway."""
    work.mkdir(parents=True, exist_ok=True)
    triton = TritonServer(repository, work / "triton", ports=TritonPorts.free(), poll_seconds=0)
    triton.start()
    gateways: list[GatewayServer] = []
    try:
        gateways.append(GatewayServer(triton.grpc_url, work))
        yield triton, gateways
    finally:
        for gateway in gateways:
            gateway.stop()
        triton.stop()
