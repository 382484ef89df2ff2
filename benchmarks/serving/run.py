"""One bench run: start every server, measure every (model, concurrency, variant) cell with
the variants taking turns, stop the servers, and write the report.

The variants take turns per (model, concurrency) rather than running one after the other, so
that a noisy neighbour falls on all of them alike.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .inputs import payloads_for
from .load import Payload
from .machine import machine_description, other_cpu_share, wait_until_quiet
from .measure import Cell, measure_cell
from .options import BenchOptions
from .report import render_markdown, write_json, write_markdown
from .repositories import export_digest, served_models
from .stack import Stack
from .targets import evaluate_targets
from .variants import MODELS, VARIANTS, measured_variants


def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run the bench as ``options`` say; returns the report, written to
    ``options.results_dir`` (and the Markdown block of ``options.markdown`` unless None)."""
    log = options.log
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="medserve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    wait_until_quiet(options.wait_quiet_s, log=log)
    machine = machine_description()
    model_dirs = served_models(options.repository, options.models)
    payloads: dict[str, list[Payload]] = {model: payloads_for(model, work) for model in MODELS if model in options.models}
    stack = Stack(options, work)
    cells: list[Cell] = []
    started = time.perf_counter()
    try:
        stack.start(model_dirs)
        log(f"servers ready after {time.perf_counter() - started:.0f}s (work dir {work})")
        for model in options.models:
            variants = measured_variants(model, options.variants, model_dirs[model], options.replica_models)
            for concurrency in options.concurrency:
                for variant in variants:
                    cell = measure_cell(stack, model, variant, concurrency, payloads[model])
                    cells.append(cell)
                    log(_cell_line(cell))
    finally:
        stack.stop()
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["other_cpu_share"] = other_cpu_share(cells)
    machine["versions"]["tritonserver"] = stack.triton_version
    report = {
        "benchmark": "medserve vs the naive baseline: closed-loop HTTP load on 127.0.0.1",
        "timestamp_utc": stamp,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine,
        "variants": {v.key: {"label": v.label, "description": v.description} for v in VARIANTS},
        "inputs": {model: [p.name for p in items] for model, items in payloads.items()},
        "models": {name: export_digest(options.repository / name) for names in model_dirs.values() for name in names},
        "settings": {
            "concurrency": list(options.concurrency),
            "seconds_per_measurement": {m: options.seconds[m] for m in options.models},
            "max_requests": {m: options.max_requests[m] for m in options.models},
            "warmup": f"one request per client (and at most {options.warmup_seconds:g} s) before each measurement",
            "gateway_env": options.gateway_env,
            "gateway_workers": options.gateway_workers,
            "baseline_route": "inline" if os.environ.get("MEDSERVE_BASELINE_ROUTE") == "inline" else "threadpool",
        },
        "cells": [asdict(c) for c in cells],
        "targets": evaluate_targets(cells),
    }
    log(f"wrote {write_json(report, options.results_dir)}")
    if options.markdown is not None:
        write_markdown(options.markdown, render_markdown(report))
        log(f"wrote {options.markdown}")
    if options.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _cell_line(cell: Cell) -> str:
    load = cell.load
    return (
        f"{cell.model:<24} {cell.variant} c={cell.concurrency:<3} {load['throughput_rps']:8.1f} req/s  p50 {load['p50_ms']:8.1f}  "
        f"p95 {load['p95_ms']:8.1f}  p99 {load['p99_ms']:8.1f} ms  n={load['requests']}"
        + (f"  errors {load['errors']}" if load["errors"] else "")
    )
