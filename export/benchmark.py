"""How fast an artifact runs on this machine: onnxruntime latency at batch 1 and throughput at
batch 8, and PyTorch eager throughput at batch 8 for comparison.

All runs use the same fixed number of CPU threads (default 1), so that figures taken on a
machine shared with other work compare with each other; each loop is bounded in time so a
3D model does not stretch an export. These figures go into the report, never into a gate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .verify import ort_session

__all__ = ["OrtTiming", "measure_onnxruntime", "measure_torch_eager"]

BATCH = 8


@dataclass(frozen=True)
class OrtTiming:
    """Milliseconds per batch-1 request (median and 99th percentile) and cases per second
    at batch 8, with ``threads`` intra-op threads."""

    latency_ms_p50_batch1: float
    latency_ms_p99_batch1: float
    throughput_per_s_batch8: float
    threads: int


#: However few runs that leaves, a loop stops after this many times its budget (a 256³ network
#: takes seconds a call on CPU: 20 runs of it would stretch an export by minutes).
CEILING_BUDGETS = 5


def _timed_runs(run: Callable[[], object], min_runs: int, max_runs: int, budget_s: float) -> list[float]:
    """Seconds per call of ``run``: at least ``min_runs`` (unless they would take more than
    :data:`CEILING_BUDGETS` budgets; at least one), then until ``budget_s`` or ``max_runs``."""
    run()  # warm-up: allocations, kernel selection
    durations: list[float] = []
    spent = 0.0
    ceiling_s = CEILING_BUDGETS * budget_s
    while not durations or (len(durations) < min_runs and spent < ceiling_s) or (spent < budget_s and len(durations) < max_runs):
        start = time.perf_counter()
        run()
        durations.append(time.perf_counter() - start)
        spent += durations[-1]
    return durations


def batch_feeds(feeds: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """``size`` cases from ``feeds`` (repeated when fewer exist), contiguous."""
    available = len(next(iter(feeds.values())))
    index = np.arange(size) % available
    return {k: np.ascontiguousarray(v[index]) for k, v in feeds.items()}


def measure_onnxruntime(
    path: Path, feeds: dict[str, np.ndarray], threads: int = 1, budget_s: float = 2.0, batch: int = BATCH
) -> OrtTiming:
    """Latency at batch 1 and throughput at ``batch`` (8, or the model's max batch size when
    smaller: a batch the model cannot be sent is not measured)."""
    session = ort_session(path, threads=threads)
    one, eight = batch_feeds(feeds, 1), batch_feeds(feeds, batch)
    latencies = np.array(_timed_runs(lambda: session.run(None, one), 20, 500, budget_s)) * 1000.0
    batches = _timed_runs(lambda: session.run(None, eight), 3, 100, budget_s)
    return OrtTiming(
        latency_ms_p50_batch1=float(np.percentile(latencies, 50)),
        latency_ms_p99_batch1=float(np.percentile(latencies, 99)),
        throughput_per_s_batch8=batch * len(batches) / float(np.sum(batches)),
        threads=threads,
    )


def measure_torch_eager(model, feeds: dict[str, np.ndarray], threads: int = 1, budget_s: float = 2.0, batch: int = BATCH) -> float:
    """PyTorch eager cases per second at ``batch`` (inference mode, same thread count)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tensors = [torch.from_numpy(v) for v in batch_feeds(feeds, batch).values()]
        with torch.inference_mode():
            batches = _timed_runs(lambda: model(*tensors), 3, 100, budget_s)
    finally:
        torch.set_num_threads(previous)
    return batch * len(batches) / float(np.sum(batches))
