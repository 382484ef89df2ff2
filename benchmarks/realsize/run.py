"""One real-size run: export the models when missing, start tritonserver, a gateway and one
eager baseline per model, measure every (workload, concurrency) with the variants taking turns,
stop everything and write the report."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks.script_baseline import ScriptModel
from benchmarks.serving.load import closed_loop
from benchmarks.serving.machine import cpu_counters, cpu_per_request, machine_description
from benchmarks.serving.options import MARKDOWN, RESULTS_DIR
from benchmarks.serving.repositories import bench_repository, export_digest
from benchmarks.serving.servers import BaselineProcess, gateway_process
from benchmarks.serving.stages import snapshot, stage_breakdown
from devtools.tritonserver import TritonPorts, TritonServer
from devtools.zoo.realsize import CLASSIFIER_2D, SEGMENTER_3D, ensure_realsize_repository

from .inputs import Workload, series_workloads, slices_workload
from .report import render_markdown, write_markdown
from .script_load import script_closed_loop

VARIANTS = {
    "served": "gateway + tritonserver (FP32, dynamic batching), multipart or application/dicom",
    "served-zip": "the same, the series as one application/zip",
    "script": "benchmarks/script_baseline.py in one process (pydicom, same preprocessing, onnxruntime with the runner's threads, same postprocessing, JSON); `concurrency` threads",
    "eager": "benchmarks/baseline.py: FastAPI + pydicom + PyTorch eager, one uvicorn worker",
}


@dataclass(frozen=True)
class RealsizeOptions:
    concurrency_2d: tuple[int, ...] = (1, 4, 16)
    concurrency_3d: tuple[int, ...] = (1,)
    seconds_2d: float = 6.0
    max_requests_2d: int = 300
    seconds_3d: float = 60.0
    max_requests_3d: int = 2  # per variant and concurrency: one 300-slice request takes seconds on 2 cores
    slices: int = 300
    size: int = 512
    variants: tuple[str, ...] = ("served", "served-zip", "script", "eager")
    work_dir: Path | None = None
    results_dir: Path = RESULTS_DIR
    markdown: Path | None = MARKDOWN
    log: Callable[[str], None] = print
    gateway_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Cell:
    workload: str
    model: str
    variant: str
    concurrency: int
    load: dict[str, Any]
    stages: dict[str, Any]


class _Servers:
    def __init__(self, options: RealsizeOptions, work: Path) -> None:
        self.options, self.work = options, work
        self.triton: TritonServer | None = None
        self.gateway = None
        self.baselines: dict[str, BaselineProcess] = {}

    def start(self, repository: Path, models: list[str]) -> None:
        log = self.options.log
        if "eager" in self.options.variants:
            for model in models:
                log(f"starting the eager baseline for {model}")
                self.baselines[model] = BaselineProcess(model, self.work / f"baseline-{model}.log").start()
        copy = bench_repository(repository, self.work / "repository", models)
        log("starting tritonserver and the gateway")
        self.triton = TritonServer(copy, self.work / "triton", ports=TritonPorts.free(), poll_seconds=0).start(ready_timeout_s=300)
        self.gateway = gateway_process(self.triton.grpc_url, self.work, 1, self.options.gateway_env).start()
        for baseline in self.baselines.values():
            baseline.wait_healthy(timeout_s=300)
        self.gateway.wait_healthy(timeout_s=120)
        self.gateway.wait_serving(timeout_s=120)

    def stop(self) -> None:
        for server in [self.gateway, *self.baselines.values()]:
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # keep stopping the others
                    self.options.log(f"stopping {server.url}: {exc}")
        if self.triton is not None:
            self.triton.stop()


def _measure(servers: _Servers, scripts: dict[str, ScriptModel], workload: Workload, name: str, variant: str, concurrency: int,
             max_requests: int, seconds: float) -> Cell:
    model = workload.model
    if variant == "script":
        script = scripts[model]
        script_closed_loop(script, workload.files, concurrency, concurrency, seconds)  # warm-up: one request per thread
        before = cpu_counters({})
        load = script_closed_loop(script, workload.files, concurrency, max_requests, seconds)
        cpu = cpu_per_request(before, cpu_counters({}), load.requests)
        cpu["script"] = cpu.pop("client")
        return Cell(name, model, variant, concurrency, load.summary(), {"cpu_ms_per_request": cpu})
    if variant == "eager":
        url, metrics, triton_url = f"{servers.baselines[model].url}/v1/models/{model}/predict", [], None
        groups = {"baseline": [servers.baselines[model].pid]}
    else:
        url, metrics = f"{servers.gateway.url}/v1/models/{model}/predict", [f"{servers.gateway.url}/metrics"]
        triton_url = servers.triton.http_url
        groups = {"gateway": [servers.gateway.pid], "triton": [servers.triton.pid]}
    warmup = asyncio.run(closed_loop(url, workload.payloads, concurrency, concurrency, seconds))
    if warmup.errors:
        raise RuntimeError(f"{name} {variant}: warm-up failed: {warmup.errors}")
    counters = snapshot(metrics, triton_url, model)
    cpu_before = cpu_counters(groups)
    load = asyncio.run(closed_loop(url, workload.payloads, concurrency, max_requests, seconds))
    cpu_after = cpu_counters(groups)
    after = snapshot(metrics, triton_url, model)
    stages = stage_breakdown(counters[0], after[0], counters[1], after[1])
    stages["cpu_ms_per_request"] = cpu_per_request(cpu_before, cpu_after, load.requests)
    return Cell(name, model, variant, concurrency, load.summary(), stages)


def run_realsize(options: RealsizeOptions) -> dict[str, Any]:
    log = options.log
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    started = time.perf_counter()
    repository = ensure_realsize_repository(log=log)
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="medserve-realsize-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    log(f"writing the {options.slices}×{options.size}×{options.size} series")
    multipart, zipped = series_workloads(SEGMENTER_3D, options.slices, options.size)
    classifier = slices_workload(CLASSIFIER_2D)
    # (name, the workload each variant answers, concurrencies, max requests, seconds per measurement)
    plan: list[tuple[str, dict[str, Workload], tuple[int, ...], int, float]] = [
        ("(a) 2D classifier", {v: classifier for v in options.variants if v != "served-zip"},
         options.concurrency_2d, options.max_requests_2d, options.seconds_2d),
        ("(b) 3D segmenter, whole series", {v: zipped if v == "served-zip" else multipart for v in options.variants},
         options.concurrency_3d, options.max_requests_3d, options.seconds_3d),
    ]
    scripts = {model: ScriptModel.open(repository / model) for model in (CLASSIFIER_2D, SEGMENTER_3D)} if "script" in options.variants else {}
    servers = _Servers(options, work)
    cells: list[Cell] = []
    try:
        servers.start(repository, [CLASSIFIER_2D, SEGMENTER_3D])
        log(f"servers ready after {time.perf_counter() - started:.0f}s (work dir {work})")
        for name, by_variant, concurrencies, max_requests, seconds in plan:
            for concurrency in concurrencies:
                for variant, workload in by_variant.items():
                    cell = _measure(servers, scripts, workload, name, variant, concurrency, max_requests, seconds)
                    cells.append(cell)
                    load = cell.load
                    log(f"{name:<32} {variant:<10} c={concurrency:<3} {load['throughput_rps']:7.2f} req/s  p50 {load['p50_ms']:9.1f} ms  n={load['requests']}"
                        + (f"  errors {load['errors']}" if load["errors"] else ""))
    finally:
        servers.stop()
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {
        "benchmark": "real-size workloads: served vs the in-process script vs FastAPI + PyTorch eager",
        "timestamp_utc": stamp,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine,
        "variants": VARIANTS,
        "workloads": {name: sorted({w.description for w in by_variant.values()}) for name, by_variant, *_ in plan},
        "models": {model: export_digest(repository / model) for model in (CLASSIFIER_2D, SEGMENTER_3D)},
        "settings": {k: v for k, v in asdict(options).items() if k not in ("log", "work_dir", "results_dir", "markdown")},
        "cells": [asdict(c) for c in cells],
    }
    report["targets"] = targets(report["cells"])
    out = options.results_dir / f"realsize-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"wrote {out}")
    if options.markdown is not None:
        write_markdown(options.markdown, render_markdown(report))
        log(f"wrote {options.markdown}")
    return report


def targets(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17: served end-to-end p50 ≤ 1.2× the in-process script for (b) at concurrency 1."""
    index = {(c["model"], c["variant"], c["concurrency"]): c for c in cells}
    script = index.get((SEGMENTER_3D, "script", 1))
    found = []
    for variant in ("served", "served-zip"):
        cell = index.get((SEGMENTER_3D, variant, 1))
        if script is None or cell is None or not script["load"]["p50_ms"] or not cell["load"]["p50_ms"]:
            continue
        ratio = cell["load"]["p50_ms"] / script["load"]["p50_ms"]
        found.append({
            "target": f"(b) {variant} p50 ≤ 1.2× the script's at concurrency 1",
            "measured": f"{ratio:.2f}× ({cell['load']['p50_ms']:.0f} ms vs {script['load']['p50_ms']:.0f} ms)",
            "value": round(ratio, 3), "met": ratio <= 1.2,
        })
    return found
