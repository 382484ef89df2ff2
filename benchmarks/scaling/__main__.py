"""``python -m benchmarks.scaling``: see :mod:`benchmarks.scaling`.

    .venv/bin/python -m benchmarks.scaling [--concurrency 16,32] [--configurations 1w,2w,2r]
        [--precisions fp32,int8] [--seconds 5] [--max-requests 1000] [--host-cores 16]
        [--reserved-cores 2] [--no-markdown]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.serving.inputs import classifier_payloads
from benchmarks.serving.machine import machine_description, other_cpu_share, wait_until_quiet
from benchmarks.serving.measure import Cell, measure_cell
from benchmarks.serving.options import MARKDOWN, PROJECT_ROOT, RESULTS_DIR, BenchOptions
from benchmarks.serving.variants import CLASSIFIER

from .projection import project_cells
from .report import render_markdown, targets, write_markdown
from .stack import ScalingStack, variant_key


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    options = BenchOptions(models=(CLASSIFIER,), seconds={CLASSIFIER: args.seconds}, max_requests={CLASSIFIER: args.max_requests},
                           repository=Path(args.repository), markdown=None)
    work = Path(tempfile.mkdtemp(prefix="medserve-scaling-"))
    wait_until_quiet(args.wait_quiet)
    machine = machine_description()
    concurrencies = tuple(int(c) for c in _csv(args.concurrency))
    configurations, precisions = _csv(args.configurations), _csv(args.precisions)
    stack = ScalingStack(options, work, configurations, precisions)
    payloads = classifier_payloads()
    cells: list[Cell] = []
    started = time.perf_counter()
    try:
        stack.start()
        print(f"servers ready after {time.perf_counter() - started:.0f}s", flush=True)
        turn = 0
        for precision in precisions:
            for concurrency in concurrencies:
                order = configurations if turn % 2 == 0 else tuple(reversed(configurations))
                turn += 1
                for configuration in order:
                    cell = measure_cell(stack, CLASSIFIER, variant_key(configuration, precision), concurrency, payloads)  # type: ignore[arg-type]
                    cells.append(cell)
                    load, cpu = cell.load, cell.stages.get("cpu_ms_per_request", {})
                    print(f"{cell.variant:<8} c={concurrency:<3} {load['throughput_rps']:7.1f} req/s  p50 {load['p50_ms']:7.1f}  p99 {load['p99_ms']:7.1f} ms  "
                          f"CPU ms/req gateway {cpu.get('gateway', 0):.2f} triton {cpu.get('triton', 0):.2f}", flush=True)
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["other_cpu_share"] = other_cpu_share(cells)
    cell_dicts = [asdict(c) for c in cells]
    projected = 16 if 16 in concurrencies else concurrencies[0]
    report = {
        "benchmark": "scaling: the 2D classifier through 1 and 2 gateway workers and 2 replicas on one tritonserver",
        "timestamp_utc": stamp,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine,
        "inputs": [p.name for p in payloads],
        "settings": {"configurations": list(configurations), "precisions": list(precisions), "concurrency": list(concurrencies),
                     "seconds": args.seconds, "max_requests": args.max_requests},
        "cells": cell_dicts,
        "projection": {"host_cores": args.host_cores, "reserved_cores": args.reserved_cores, "concurrency": projected,
                       "rows": project_cells(cell_dicts, args.host_cores, args.reserved_cores, projected)},
        "targets": targets(cell_dicts),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = RESULTS_DIR / f"scaling-{stamp}.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}")
    markdown = render_markdown(report)
    print(markdown)
    if not args.no_markdown:
        write_markdown(MARKDOWN, markdown)
        print(f"wrote {MARKDOWN}")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the 2D throughput with 1 and 2 gateway workers and 2 replicas, and a projection for a larger host")
    parser.add_argument("--concurrency", default="16,32", help="comma-separated client counts")
    parser.add_argument("--configurations", default="1w,2w,2r", help="1w / 2w: one gateway, MEDSERVE_WORKERS=1 / 2; 2r: two 1-worker replicas")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement window per cell (s)")
    parser.add_argument("--max-requests", type=int, default=1000, help="most requests per cell")
    parser.add_argument("--host-cores", type=int, default=16, help="cores of the projected host")
    parser.add_argument("--reserved-cores", type=float, default=2.0, help="of those, cores kept for the OS, ingress and the node")
    parser.add_argument("--repository", default=str(PROJECT_ROOT / "model_repository"))
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS", help="first wait up to this long for a 1-minute load average below 1.5")
    parser.add_argument("--no-markdown", action="store_true", help="write the JSON result only")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
