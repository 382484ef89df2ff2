"""The servers of a scaling run: one tritonserver serving the 2D classifier (FP32 and INT8,
dynamic batching, as deployed) and, on it, the gateways of every configuration, all up during
the whole run so that the configurations take turns.

It answers :func:`benchmarks.serving.measure.measure_cell` as the serving bench's stack does
(``options``, ``endpoint``, ``process_groups``), with a *variant* key
``<configuration>:<precision>`` (e.g. ``2w:int8``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devtools.processes import GatewayProcess
from devtools.tritonserver import TritonPorts, TritonServer

from benchmarks.serving.options import BenchOptions
from benchmarks.serving.repositories import bench_repository
from benchmarks.serving.servers import gateway_process, stop_servers
from benchmarks.serving.variants import CLASSIFIER
from export.spec import Precision
from export.variants import model_name


@dataclass(frozen=True)
class Configuration:
    """``gateways`` gateway processes of ``workers`` uvicorn workers each (``MEDSERVE_WORKERS``);
    with several gateways client ``i`` talks to gateway ``i mod gateways`` (client-side round
    robin, as a Service spreads connections over replicas)."""

    key: str
    label: str
    gateways: int
    workers: int


CONFIGURATIONS = (
    Configuration("1w", "1 gateway, MEDSERVE_WORKERS=1", 1, 1),
    Configuration("2w", "1 gateway, MEDSERVE_WORKERS=2", 1, 2),
    Configuration("2r", "2 replicas of 1 worker, client round robin", 2, 1),
)
BY_KEY = {c.key: c for c in CONFIGURATIONS}


def variant_key(configuration: str, precision: str) -> str:
    return f"{configuration}:{precision}"


class ScalingStack:
    """One tritonserver and the gateways of ``configurations`` on it."""

    def __init__(self, options: BenchOptions, work: Path, configurations: tuple[str, ...], precisions: tuple[str, ...]) -> None:
        self.options, self.work = options, work
        self.configurations, self.precisions = configurations, precisions
        self.triton: TritonServer | None = None
        self.gateways: dict[str, list[GatewayProcess]] = {}

    def start(self) -> None:
        log = self.options.log
        names = [model_name(CLASSIFIER, p) for p in self.precisions]
        repository = bench_repository(self.options.repository, self.work / "repository", names, dynamic_batching=True)
        log(f"starting tritonserver ({', '.join(names)})")
        self.triton = TritonServer(repository, self.work / "triton", ports=TritonPorts.free(), poll_seconds=0).start(ready_timeout_s=300)
        for key in self.configurations:
            configuration = BY_KEY[key]
            self.gateways[key] = [
                gateway_process(self.triton.grpc_url, self.work, configuration.workers, self.options.gateway_env).start()
                for _ in range(configuration.gateways)
            ]
        for group in self.gateways.values():
            for gateway in group:
                gateway.wait_healthy(timeout_s=120)
                gateway.wait_serving(timeout_s=120)

    def endpoint(self, variant: str, model: str) -> tuple[list[str], list[str], TritonServer, str]:
        """(predict URLs, gateway metrics URLs, Triton, Triton model name) of ``variant``."""
        configuration, precision = variant.split(":")
        served = model_name(model, Precision(precision))
        gateways = self.gateways[configuration]
        assert self.triton is not None, "the stack is not started"
        return [f"{g.url}/v1/models/{served}/predict" for g in gateways], [f"{g.url}/metrics" for g in gateways], self.triton, served

    def process_groups(self, variant: str, model: str) -> dict[str, list[int]]:
        """Process groups (each server's pid: a session of its own, workers and decoders in it)."""
        configuration = variant.split(":")[0]
        assert self.triton is not None and self.triton.pid is not None, "the stack is not started"
        return {"gateway": [g.pid for g in self.gateways[configuration] if g.pid is not None], "triton": [self.triton.pid]}

    def stop(self) -> None:
        stop_servers((g for group in self.gateways.values() for g in group), self.options.log)
        if self.triton is not None:
            self.triton.stop()
