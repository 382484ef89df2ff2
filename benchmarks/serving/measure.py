"""One measurement (a *cell*): one model, one variant, one concurrency.

A warm-up first (one request per client, at most ``warmup_seconds``), then the closed loop,
with the gateway's and Triton's counters and every process group's CPU read just before and
just after it, so that the stage and CPU figures cover exactly the measured requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Sequence

from .inputs import answer_check
from .load import Payload, closed_loop
from .machine import cpu_counters, cpu_per_request
from .stack import Stack
from .stages import snapshot, stage_breakdown


@dataclass
class Cell:
    """The result of one measurement: ``load`` (:meth:`LoadResult.summary`) and ``stages``
    (the stage breakdown in ms per request, and ``cpu_ms_per_request``)."""

    model: str
    variant: str
    concurrency: int
    load: dict[str, Any]
    stages: dict[str, Any]


def measure_cell(stack: Stack, model: str, variant: str, concurrency: int, payloads: Sequence[Payload]) -> Cell:
    options = stack.options
    url, metrics_url, triton, served = stack.endpoint(variant, model)
    triton_url = triton.http_url if triton else None
    groups = stack.process_groups(variant, model)
    check = answer_check(model)
    warmup = asyncio.run(closed_loop(url, payloads, concurrency, concurrency, options.warmup_seconds, check))
    if warmup.errors:
        raise RuntimeError(f"{model} variant {variant}: warm-up failed: {warmup.errors}")
    before = snapshot(metrics_url, triton_url, served)
    cpu_before = cpu_counters(groups)
    load = asyncio.run(closed_loop(url, payloads, concurrency, options.max_requests[model], options.seconds[model], check))
    cpu_after = cpu_counters(groups)
    after = snapshot(metrics_url, triton_url, served)
    stages = stage_breakdown(before[0], after[0], before[1], after[1])
    stages["cpu_ms_per_request"] = cpu_per_request(cpu_before, cpu_after, load.requests)
    return Cell(model, variant, concurrency, load.summary(), stages)
