"""One real-size run: export the models when missing, start tritonserver, a gateway and one
eager baseline per model, measure every (workload, concurrency) with the variants taking turns,
stop everything and write the report."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks.script_baseline import ScriptModel, answer, zip_members
from benchmarks.serving.load import closed_loop
from benchmarks.serving.machine import cpu_counters, cpu_per_request, machine_description
from benchmarks.serving.options import MARKDOWN, RESULTS_DIR
from benchmarks.serving.repositories import bench_repository, export_digest
from benchmarks.serving.servers import BaselineProcess, gateway_process, stop_servers
from benchmarks.serving.stages import snapshot, stage_breakdown
from devtools.tritonserver import TritonPorts, TritonServer
from devtools.zoo.realsize import CLASSIFIER_2D, SEGMENTER_3D, ensure_realsize_repository

from .deepbet import CASCADE, MODELS as DEEPBET_MODELS, deepbet_workload, ensure_deepbet
from .inputs import Workload, series_workloads, slices_workload
from .report import render_markdown, write_markdown
from .script_load import script_closed_loop

VARIANTS = {
    "served": "gateway + tritonserver (FP32, dynamic batching), multipart or application/dicom",
    "served-zip": "the same, the series as one application/zip",
    "script": "benchmarks/script_baseline.py in one process (pydicom, same preprocessing, onnxruntime with the runner's threads, same postprocessing, JSON); `concurrency` threads",
    "script-zip": "the same script given the ZIP's bytes, its members read with zipfile first",
    "eager": "benchmarks/baseline.py: FastAPI + pydicom + PyTorch eager, one uvicorn worker; for (c) deepbet's OWN pipeline "
             "in this process instead (devtools/thirdparty/deepbet_reference.py: pydicom → NIfTI, deepbet's BrainExtraction.run "
             "on its TorchScript archives with 2 torch threads, mask back to frame order), not medserve's steps",
}
#: workload key → the models it serves
WORKLOAD_MODELS = {"a": (CLASSIFIER_2D,), "b": (SEGMENTER_3D,), "c": DEEPBET_MODELS}


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
    variants: tuple[str, ...] = ("served", "served-zip", "script", "script-zip", "eager")
    workloads: tuple[str, ...] = ("a", "b", "c")
    concurrency_cascade: tuple[int, ...] = (1,)
    seconds_cascade: float = 60.0
    max_requests_cascade: int = 3  # per variant and concurrency: one request takes seconds (the 256³ stage) on 2 cores
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

    def start(self, repository: Path, models: list[str], eager_models: list[str]) -> None:
        log = self.options.log
        if "eager" in self.options.variants:
            for model in eager_models:
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
        stop_servers([self.gateway, *self.baselines.values()], self.options.log)
        if self.triton is not None:
            self.triton.stop()


def _measure(servers: _Servers, scripts: dict[str, ScriptModel], workload: Workload, name: str, variant: str, concurrency: int,
             max_requests: int, seconds: float) -> Cell:
    model = workload.model
    if variant in ("script", "script-zip") or (variant == "eager" and model == CASCADE):
        if variant == "script":
            script = scripts[model]
            call, key = (lambda bodies: answer(script, bodies)), "script"
        elif variant == "script-zip":
            script = scripts[model]
            call, key = (lambda bodies: answer(script, zip_members(bodies[0]))), "script"
        else:
            from devtools.thirdparty.deepbet_reference import deepbet_reference

            call, key = (lambda bodies: deepbet_reference([io.BytesIO(b) for b in bodies])), "baseline"
        script_closed_loop(call, workload.files, concurrency, concurrency, seconds)  # warm-up: one request per thread
        before = cpu_counters({})
        load = script_closed_loop(call, workload.files, concurrency, max_requests, seconds)
        cpu = cpu_per_request(before, cpu_counters({}), load.requests)
        cpu[key] = cpu.pop("client")
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
    if counters[0] is not None and after[0] is not None and load.requests:
        # a cascade records a stage more than once per request (localiser.*, model.*): totals per request too
        stages["gateway_ms_per_request"] = {
            key: round((seconds - counters[0].get(key, (0.0, 0.0))[0]) / load.requests * 1000, 3) for key, (seconds, _) in after[0].items()
        }
    stages["cpu_ms_per_request"] = cpu_per_request(cpu_before, cpu_after, load.requests)
    return Cell(name, model, variant, concurrency, load.summary(), stages)


def run_realsize(options: RealsizeOptions) -> dict[str, Any]:
    log = options.log
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    started = time.perf_counter()
    chosen = options.workloads
    repository = ensure_realsize_repository(names=tuple(m for w in ("a", "b") if w in chosen for m in WORKLOAD_MODELS[w]), log=log)
    if "c" in chosen:
        ensure_deepbet(repository, log=log)
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="medserve-realsize-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    # (name, the workload each variant answers, concurrencies, max requests, seconds per measurement)
    plan: list[tuple[str, dict[str, Workload], tuple[int, ...], int, float]] = []
    if "a" in chosen:
        classifier = slices_workload(CLASSIFIER_2D)
        plan.append(("(a) 2D classifier", {v: classifier for v in options.variants if not v.endswith("-zip")},
                     options.concurrency_2d, options.max_requests_2d, options.seconds_2d))
    if "b" in chosen:
        log(f"writing the {options.slices}×{options.size}×{options.size} series")
        multipart, zipped = series_workloads(SEGMENTER_3D, options.slices, options.size)
        plan.append(("(b) 3D segmenter, whole series", {v: zipped if v.endswith("-zip") else multipart for v in options.variants},
                     options.concurrency_3d, options.max_requests_3d, options.seconds_3d))
    if "c" in chosen:
        brain = deepbet_workload()
        plan.append(("(c) deepbet cascade, enhanced MR", {v: brain for v in options.variants if not v.endswith("-zip")},
                     options.concurrency_cascade, options.max_requests_cascade, options.seconds_cascade))
    models = [m for w in chosen for m in WORKLOAD_MODELS[w]]
    answered = [by_variant[next(iter(by_variant))].model for _, by_variant, *_ in plan]
    scripts = {model: ScriptModel.open(repository / model) for model in answered} if {"script", "script-zip"} & set(options.variants) else {}
    servers = _Servers(options, work)
    cells: list[Cell] = []
    agreement: dict[str, Any] = {}
    try:
        servers.start(repository, models, [m for m in answered if m != CASCADE])
        log(f"servers ready after {time.perf_counter() - started:.0f}s (work dir {work})")
        if "c" in chosen and CASCADE in scripts:
            agreement[CASCADE] = script_agreement(servers.gateway.url, scripts[CASCADE], brain.files[0])
            log(f"(c) the script's mask against the served one: {agreement[CASCADE]}")
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
        "models": {model: export_digest(repository / model) for model in models},
        "agreement": agreement,
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


def script_agreement(gateway_url: str, script: ScriptModel, bodies: list[bytes]) -> dict[str, Any]:
    """The script's cascade mask against the served one (``?format=rle``) on the same bytes:
    voxels that differ, Dice, and each side's volume in mL (behaviour, not timing)."""
    import httpx

    from benchmarks.script_baseline import cascade_labels
    from gateway.outputs import rle
    from gateway.outputs.measurements import measure_labels

    response = httpx.post(f"{gateway_url}/v1/models/{script.card.name}/predict?format=rle", content=bodies[0],
                          headers={"Content-Type": "application/dicom"}, timeout=300)
    response.raise_for_status()
    label = script.card.outputs[0].labels[1]
    served = rle.decode(response.json()["masks"][label]).astype(bool)
    labels_map, plan = cascade_labels(script, bodies)
    mine = labels_map == 1
    volume = next(m.volume_ml for m in measure_labels(labels_map, plan.affine_lps, script.card.outputs[0].labels) if m.label == label)
    served_ml = next(m["volume_ml"] for m in httpx.post(
        f"{gateway_url}/v1/models/{script.card.name}/predict", content=bodies[0], headers={"Content-Type": "application/dicom"}, timeout=300,
    ).json()["measurements"] if m["label"] == label)
    same_shape = served.shape == mine.shape
    return {
        "shape": list(mine.shape), "same_shape": same_shape,
        "differing_voxels": int((served != mine).sum()) if same_shape else None,
        "dice": round(2.0 * float((served & mine).sum()) / float(served.sum() + mine.sum()), 6) if same_shape else None,
        "script_volume_ml": round(float(volume), 3), "served_volume_ml": round(float(served_ml), 3),
    }


def targets(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17: served end-to-end p50 ≤ 1.2× the in-process script for (b) and (c) at concurrency 1:
    each served variant against the script reading the same bytes (the ZIP against the script
    given the ZIP), and the ZIP also against the script given the files already unpacked."""
    index = {(c["model"], c["variant"], c["concurrency"]): c for c in cells}
    found = []
    for workload, model, variant, baseline in (
        ("b", SEGMENTER_3D, "served", "script"), ("b", SEGMENTER_3D, "served-zip", "script-zip"),
        ("b", SEGMENTER_3D, "served-zip", "script"), ("c", CASCADE, "served", "script"),
    ):
        script, cell = index.get((model, baseline, 1)), index.get((model, variant, 1))
        if script is None or cell is None or not script["load"]["p50_ms"] or not cell["load"]["p50_ms"]:
            continue
        ratio = cell["load"]["p50_ms"] / script["load"]["p50_ms"]
        found.append({
            "target": f"({workload}) {variant} p50 ≤ 1.2× {baseline}'s at concurrency 1",
            "measured": f"{ratio:.2f}× ({cell['load']['p50_ms']:.0f} ms vs {script['load']['p50_ms']:.0f} ms)",
            "value": round(ratio, 3), "met": ratio <= 1.2,
        })
    return found
