"""A real stack to fuzz: tritonserver (devtools.tritonserver) over the demo repository and
the gateway as production starts it (``python -m gateway.server``, a
:class:`devtools.processes.GatewayProcess`), on free loopback ports, JSON logs to files. The
gateway's upload cap is :data:`UPLOAD_CAP_BYTES`, which the ZIP bombs are sized against."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.processes import GatewayProcess
from devtools.tritonserver import TritonPorts, TritonServer

from .families.uploads import UPLOAD_CAP_BYTES

#: Settings of the fuzzed gateway, by field name (``MEDSERVE_<NAME>``).
#: Jobs are accepted (STOW-RS and the jobs API take the corpus durably) but not run: every STOW
#: of the campaign would queue a run of each model that takes it, and the campaign measures the
#: gateway's intake, not days of inference on fuzzed series.
GATEWAY_SETTINGS = {"max_upload_bytes": str(UPLOAD_CAP_BYTES), "log_level": "info", "model_cache_ttl_s": "5", "job_workers": "0"}


def start_gateway(triton_grpc_url: str, work: Path, **settings: str) -> GatewayProcess:
    """A gateway with :data:`GATEWAY_SETTINGS` (``settings`` over them), its log in ``work``,
    serving once ``/healthz`` answers."""
    gateway = GatewayProcess(triton_grpc_url, work, settings=GATEWAY_SETTINGS | settings)
    gateway.start()
    return gateway.wait_healthy()



@contextmanager
def fuzz_stack(repository: Path, work: Path) -> Iterator[tuple[TritonServer, list[GatewayProcess]]]:
    """Triton and one gateway; the list grows when the runner restarts a dead gateway."""
    work.mkdir(parents=True, exist_ok=True)
    triton = TritonServer(repository, work / "triton", ports=TritonPorts.free(), poll_seconds=0)
    triton.start()
    gateways: list[GatewayProcess] = []
    try:
        gateways.append(start_gateway(triton.grpc_url, work))
        yield triton, gateways
    finally:
        for gateway in gateways:
            gateway.stop()
        triton.stop()
