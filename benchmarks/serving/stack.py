"""Every server of one bench run, started once and stopped together: a baseline per model
(variant a), a tritonserver per deployment (``nobatch`` for b, ``batch`` for c, d and e) each
with its gateway, and for (e) two more gateways on the ``batch`` Triton.

All servers are up during the whole run so that the variants can take turns per (model,
concurrency) and a noisy neighbour falls on all of them alike.
"""

from __future__ import annotations

import json
from pathlib import Path

from devtools.processes import GatewayProcess
from devtools.tritonserver import TritonPorts, TritonServer

from .options import BenchOptions
from .repositories import bench_repository
from .servers import BaselineProcess, gateway_process, stop_servers
from .stages import http_get
from .variants import served_name


class Stack:
    """Every server of the run, started once and stopped together."""

    def __init__(self, options: BenchOptions, work: Path) -> None:
        self.options, self.work = options, work
        self.baselines: dict[str, BaselineProcess] = {}
        self.tritons: dict[str, TritonServer] = {}
        self.gateways: dict[str, list[GatewayProcess]] = {}
        self.triton_version = ""

    def start(self, model_dirs: dict[str, list[str]]) -> None:
        """Start every server the options' variants need and wait until all are ready
        (``model_dirs``: each model's Triton models, as :func:`served_models` lists them)."""
        log, options = self.options.log, self.options
        self.work.mkdir(parents=True, exist_ok=True)
        if "a" in options.variants:
            for model in options.models:
                log(f"starting the baseline for {model}")
                self.baselines[model] = BaselineProcess(model, self.work / f"baseline-{model}.log").start()
        deployments = []
        if "b" in options.variants:
            deployments.append(("nobatch", [m for m in options.models], False))
        if {"c", "d", "e"} & set(options.variants):
            deployments.append(("batch", [d for m in options.models for d in model_dirs[m]], True))
        for key, names, batching in deployments:
            repository = bench_repository(options.repository, self.work / f"repository-{key}", names, dynamic_batching=batching)
            log(f"starting tritonserver ({key}: {', '.join(names)})")
            triton = TritonServer(repository, self.work / f"triton-{key}", ports=TritonPorts.free(), poll_seconds=0)
            self.tritons[key] = triton.start(ready_timeout_s=300)
            self.gateways[key] = [self._start_gateway(triton)]
            if key == "batch" and "e" in options.variants:
                self.gateways["replicas"] = [self._start_gateway(triton) for _ in range(2)]
        for baseline in self.baselines.values():
            baseline.wait_healthy()
        for group in self.gateways.values():
            for server in group:
                server.wait_healthy(timeout_s=120)
        for group in self.gateways.values():
            for server in group:
                server.wait_serving(timeout_s=60)
        if self.tritons:
            self.triton_version = json.loads(http_get(next(iter(self.tritons.values())).http_url + "/v2")).get("version", "")

    def _start_gateway(self, triton: TritonServer) -> GatewayProcess:
        options = self.options
        return gateway_process(triton.grpc_url, self.work, options.gateway_workers, options.gateway_env).start()

    def _deployment(self, variant: str) -> tuple[list[GatewayProcess], TritonServer]:
        triton = self.tritons["nobatch" if variant == "b" else "batch"]
        return self.gateways["replicas" if variant == "e" else "nobatch" if variant == "b" else "batch"], triton

    def endpoint(self, variant: str, model: str) -> tuple[list[str], list[str], TritonServer | None, str]:
        """(predict URLs, gateway metrics URLs, Triton, Triton model name) of a variant."""
        name = served_name(variant, model)
        if variant == "a":
            return [f"{self.baselines[model].url}/v1/models/{model}/predict"], [], None, name
        gateways, triton = self._deployment(variant)
        return [f"{g.url}/v1/models/{name}/predict" for g in gateways], [f"{g.url}/metrics" for g in gateways], triton, name

    def process_groups(self, variant: str, model: str) -> dict[str, list[int]]:
        """Process groups (= the server's pid: each starts its own session) serving a variant."""
        if variant == "a":
            return {"baseline": [self._pid(self.baselines[model])]}
        gateways, triton = self._deployment(variant)
        return {"gateway": [self._pid(g) for g in gateways], "triton": [self._pid(triton)]}

    @staticmethod
    def _pid(server: BaselineProcess | GatewayProcess | TritonServer) -> int:
        assert server.pid is not None, "a server of the stack is not running"
        return server.pid

    def stop(self) -> None:
        stop_servers([*(g for group in self.gateways.values() for g in group), *self.baselines.values()], self.options.log)
        for triton in self.tritons.values():
            triton.stop()
