"""The projection of 2D throughput onto a larger CPU host, from measured CPU per request.

On this development machine every process shares 2 cores, so 2 gateway workers cannot show
how far the gateway scales: the CPU per request can. A host with ``host_cores`` cores, of
which ``reserved_cores`` go to the OS, ingress and the rest of the node, sustains at most

    throughput (req/s) = (host_cores − reserved_cores) × 1000 / (gateway_ms + triton_host_ms)

with ``gateway_ms`` the gateway's CPU ms per request (all its workers and decoder processes)
and ``triton_host_ms`` the CPU ms per request tritonserver still spends on the host. The
cores split between the gateway and Triton in proportion to their CPU per request. What of
Triton stays on the host of a GPU is not measurable on this CPU-only Triton (its CPU per
request is mostly the model's onnxruntime compute, which moves to the GPU; its gRPC, batching
and Python-backend work stays; the compute's wall time is no bound on its CPU when processes
wait for the 2 cores), so the projection is a range: Triton's measured CPU per request all on
the host (``lower``) and none of it (``upper``: the gateway alone). The GPU is assumed not to
be the limit (the demo classifier is a small CNN on 128² inputs). A projection, not a
measurement: it assumes CPU per request stays as measured when workers do not share cores (no
cache or memory-bandwidth contention) and the load generator runs elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Projection:
    """Throughput of a ``host_cores`` host from CPU ms per request (see the module)."""

    host_cores: int
    reserved_cores: float
    gateway_ms: float
    triton_host_ms: float

    def __post_init__(self) -> None:
        if self.gateway_ms <= 0 or self.triton_host_ms < 0 or not 0 <= self.reserved_cores < self.host_cores:
            raise ValueError("a projection needs gateway_ms > 0, triton_host_ms ≥ 0 and 0 ≤ reserved_cores < host_cores")

    @property
    def per_gateway_core_rps(self) -> float:
        """Requests per second one core of gateway workers sustains."""
        return 1000.0 / self.gateway_ms

    @property
    def throughput_rps(self) -> float:
        """Requests per second when the gateway workers and Triton share the free cores."""
        return (self.host_cores - self.reserved_cores) * 1000.0 / (self.gateway_ms + self.triton_host_ms)

    @property
    def gateway_cores(self) -> float:
        """Cores the gateway workers use at :attr:`throughput_rps`."""
        return self.throughput_rps * self.gateway_ms / 1000.0

    @property
    def triton_cores(self) -> float:
        """Cores tritonserver uses on the host at :attr:`throughput_rps`."""
        return self.throughput_rps * self.triton_host_ms / 1000.0

    @property
    def gateway_workers(self) -> int:
        """``MEDSERVE_WORKERS`` (summed over replicas) that keep those cores busy: one per core,
        at least one."""
        return max(1, math.floor(self.gateway_cores))

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "per_gateway_core_rps": round(self.per_gateway_core_rps, 1),
            "throughput_rps": round(self.throughput_rps, 1),
            "gateway_cores": round(self.gateway_cores, 2),
            "triton_cores": round(self.triton_cores, 2),
            "gateway_workers": self.gateway_workers,
        }


def project_cells(cells: list[dict[str, Any]], host_cores: int, reserved_cores: float, concurrency: int) -> list[dict[str, Any]]:
    """Per measured ``<configuration>:<precision>`` cell at ``concurrency`` (cells as the
    report holds them: ``variant``, ``concurrency``, ``stages.cpu_ms_per_request``), the range
    of projections: ``lower`` with Triton's measured CPU per request all on the host, ``upper``
    with none of it; cells without gateway and Triton CPU are skipped."""
    rows = []
    for cell in cells:
        cpu = cell["stages"].get("cpu_ms_per_request", {})
        if cell["concurrency"] != concurrency or not cpu.get("gateway") or "triton" not in cpu:
            continue
        lower = Projection(host_cores, reserved_cores, cpu["gateway"], max(cpu["triton"], 0.0))
        upper = Projection(host_cores, reserved_cores, cpu["gateway"], 0.0)
        rows.append({"variant": cell["variant"], "lower": lower.summary(), "upper": upper.summary()})
    return rows
