"""The closed-loop load generator: ``concurrency`` HTTP clients, each sending its next request
when the last one was answered, bounded by a request count and a time (s).

A closed loop measures what a fixed number of callers get (throughput and latency together);
the bench and ``benchmarks/intake_bench.py`` both drive servers through it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class Payload:
    """One request body the clients send, with its ``Content-Type``."""

    name: str
    body: bytes
    content_type: str


@dataclass
class LoadResult:
    """Latencies of every answered request, and throughput over the measurement window: the
    requests answered before the time limit (or, when the request limit came first, all of
    them, over the time until the last answer). Requests still in flight at the time limit
    are waited for, so that they cannot load the next measurement, and their latencies count."""

    concurrency: int
    latencies_s: list[float]
    errors: dict[str, int]
    window_s: float
    answered_in_window: int
    drain_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput_rps(self) -> float:
        return self.answered_in_window / self.window_s if self.window_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else None

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": dict(self.errors),
            "window_s": round(self.window_s, 3),
            "answered_in_window": self.answered_in_window,
            "drain_s": round(self.drain_s, 3),
            "throughput_rps": round(self.throughput_rps, 3),
            "mean_ms": round(float(np.mean(self.latencies_s)) * 1000, 3) if self.latencies_s else None,
            **{f"p{q}_ms": _round(self.percentile_ms(q)) for q in (50, 95, 99)},
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


async def closed_loop(
    url: str | Sequence[str],
    payloads: Sequence[Payload],
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    check: Callable[[bytes], bool] | None = None,
) -> LoadResult:
    """``concurrency`` clients on keep-alive connections, each POSTing its next payload (round
    robin, staggered per client) as soon as the previous answer arrived, until
    ``max_requests`` were sent or ``max_seconds`` passed. Only 200 answers (that pass
    ``check``) count as latencies; anything else is an error. With several URLs (replicas),
    client ``i`` talks to ``urls[i % len(urls)]``."""
    import aiohttp

    urls = [url] if isinstance(url, str) else list(url)
    latencies: list[float] = []
    answered_at: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    started = time.perf_counter()
    deadline = started + max_seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=max(120.0, max_seconds * 4))

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal sent
        k = index
        while sent < max_requests and time.perf_counter() < deadline:
            sent += 1
            payload = payloads[k % len(payloads)]
            k += 1
            t0 = time.perf_counter()
            try:
                async with session.post(urls[index % len(urls)], data=payload.body, headers={"Content-Type": payload.content_type}) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            t1 = time.perf_counter()
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            elif check is not None and not check(body):
                errors["unexpected_answer"] = errors.get("unexpected_answer", 0) + 1
            else:
                latencies.append(t1 - t0)
                answered_at.append(t1)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(i, session) for i in range(concurrency)))
    finished = time.perf_counter()
    if sent >= max_requests and (not answered_at or max(answered_at) <= deadline):
        window_end = max(answered_at, default=finished)  # the request limit came first
    else:
        window_end = deadline
    in_window = sum(1 for t in answered_at if t <= window_end)
    return LoadResult(concurrency, latencies, errors, window_end - started, in_window, max(finished - window_end, 0.0))
