"""The script baseline under the same closed loop as the servers: ``concurrency`` threads in
this process, each running its next request when the last one finished (onnxruntime, numpy
and scipy release the GIL, as a script's thread pool would use them)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

from benchmarks.serving.load import LoadResult


def script_closed_loop(call: Callable[[Sequence[bytes]], Any], requests: Sequence[Sequence[bytes]], concurrency: int, max_requests: int,
                       max_seconds: float) -> LoadResult:
    """Like :func:`benchmarks.serving.load.closed_loop`, calling ``call`` on each request's files
    (e.g. :func:`benchmarks.script_baseline.answer` of one model) instead of a URL."""
    lock = threading.Lock()
    latencies: list[float] = []
    answered_at: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    def client(index: int) -> None:
        nonlocal sent
        k = index
        while True:
            with lock:
                if sent >= max_requests or time.perf_counter() >= deadline:
                    return
                sent += 1
            bodies = requests[k % len(requests)]
            k += 1
            t0 = time.perf_counter()
            try:
                call(bodies)
            except Exception as exc:  # counted like an error answer of a server
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            t1 = time.perf_counter()
            with lock:
                latencies.append(t1 - t0)
                answered_at.append(t1)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished = time.perf_counter()
    if sent >= max_requests and (not answered_at or max(answered_at) <= deadline):
        window_end = max(answered_at, default=finished)
    else:
        window_end = deadline
    in_window = sum(1 for t in answered_at if t <= window_end)
    return LoadResult(concurrency, latencies, errors, window_end - started, in_window, max(finished - window_end, 0.0))
