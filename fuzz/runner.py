"""Send cases to a live gateway and judge its answers.

A case *fails* when the gateway answers 5xx, drops the connection, does not answer within
the deadline, answers a 4xx that is not the JSON error body ``{"code", "message",
"request_id"}``, or dies (process gone) while the case is in flight. Requests are written as
raw HTTP/1.1 (one connection each, ``Connection: close``), so header abuse reaches the server
exactly as generated; the body is sent in chunks and sending stops as soon as the server
answers early (a 413 while streaming is an answer, not a dropped connection).

Memory is the resident set (``VmRSS`` of /proc/<pid>/status) of the gateway process and all
its descendants (uvicorn workers, decoder workers), sampled every ``rss_interval_s``.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .cases import Case, Request

CHUNK_BYTES = 1 << 16


class Gateway(Protocol):
    """What the runner needs of a gateway process (tests/conftest.py GatewayProcess, stack.py)."""

    port: int
    process: subprocess.Popen
    log: Path


@dataclass(frozen=True)
class Outcome:
    case_id: str
    family: str
    summary: str
    kind: str  # 2xx | 4xx | 5xx | other | dropped | timeout
    status: int | None = None
    code: str | None = None
    request_id: str | None = None
    problem: str | None = None  # why the case fails; None when it passes
    elapsed_s: float = 0.0

    @property
    def failing(self) -> bool:
        return self.problem is not None


@dataclass(frozen=True)
class Crash:
    """The gateway process was found gone; the cases in flight at that moment."""

    returncode: int | None
    in_flight: tuple[str, ...]
    log_tail: str


@dataclass
class CampaignResult:
    outcomes: list[Outcome] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    rss_after_kib: int = 0
    elapsed_s: float = 0.0
    not_sent: int = 0
    gateway_alive: bool = True

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failing]

    def counts(self) -> Counter:
        return Counter(o.kind for o in self.outcomes)

    def codes(self) -> Counter:
        return Counter((o.status, o.code) for o in self.outcomes if o.kind == "4xx")


def tree_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in KiB (0 when the process is gone)."""
    total, pending, seen = 0, [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def send(host: str, port: int, request: Request, timeout_s: float) -> tuple[int | None, dict[str, str], bytes, str | None]:
    """(status, headers, body, transport problem) of one request; status None when no answer."""
    names = {name.lower() for name, _ in request.headers}
    head = [f"{request.method} {request.target} HTTP/1.1".encode("latin-1"), b"Host: %s:%d" % (host.encode(), port)]
    if b"content-length" not in names:
        head.append(b"Content-Length: %d" % len(request.body))
    head.append(b"Connection: close")
    head += [name + b": " + value for name, value in request.headers]
    wire = memoryview(b"\r\n".join(head) + b"\r\n\r\n" + request.body)
    deadline = time.monotonic() + timeout_s
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        return None, {}, b"", f"connect failed: {type(exc).__name__}"
    reset_while_sending = False
    with sock:
        try:
            for start in range(0, len(wire), CHUNK_BYTES):
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered before reading everything
                sock.sendall(wire[start : start + CHUNK_BYTES])
        except (BrokenPipeError, ConnectionResetError):
            reset_while_sending = True
        except TimeoutError:
            return None, {}, b"", "timeout while sending"
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            response = http.client.HTTPResponse(sock)
            response.begin()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body, None
        except TimeoutError:
            return None, {}, b"", "timeout"
        except (http.client.HTTPException, OSError) as exc:
            when = "after a reset while sending" if reset_while_sending else "while reading the answer"
            return None, {}, b"", f"dropped {when}: {type(exc).__name__}"


def judge(case: Case, status: int | None, headers: dict[str, str], body: bytes, problem: str | None, elapsed_s: float) -> Outcome:
    summary = case.request.summary()
    if status is None:
        kind = "timeout" if problem and problem.startswith("timeout") else "dropped"
        return Outcome(case.id, case.family, summary, kind, problem=problem, elapsed_s=elapsed_s)
    request_id = headers.get("x-request-id")
    code = None
    try:
        parsed = json.loads(body) if headers.get("content-type", "").startswith("application/json") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        code = parsed.get("code") if isinstance(parsed.get("code"), str) else None
    kind = f"{status // 100}xx" if status // 100 in (2, 4, 5) else "other"
    problem = None
    if kind == "5xx":
        problem = f"{status} {code or 'no JSON code'}"
    elif kind == "other":
        problem = f"unexpected status {status}"
    elif kind == "4xx" and not (is_error_body(parsed) or is_stow_failure(status, headers, body)):
        problem = f"{status} without the JSON error body ({headers.get('content-type', 'no content type')})"
    return Outcome(case.id, case.family, summary, kind, status, code, request_id, problem, elapsed_s)


def is_error_body(parsed: object) -> bool:
    return isinstance(parsed, dict) and {"code", "message", "request_id"} <= parsed.keys()


def is_stow_failure(status: int, headers: dict[str, str], body: bytes) -> bool:
    """STOW-RS's own refusal (PS3.18 §10.5.3): 409 with a DICOM JSON Store Instances Response
    whose (0008,1198) Failed SOP Sequence lists every instance."""
    if status != 409 or not headers.get("content-type", "").startswith("application/dicom+json"):
        return False
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "00081198" in parsed


def warm_up(gateway: Gateway, timeout_s: float = 120.0) -> None:
    """One valid request per model and output format, and one STOW-RS, so that the lazy
    imports and caches of every route are in ``before`` and do not count as growth."""
    from .envelopes import FORMATS, MODELS, STOW, multipart_related, predict_target
    from .corpus import corpus

    data = corpus().bytes("CT_small.dcm")
    requests = [Request("POST", predict_target(m, f), data, ((b"Content-Type", b"application/dicom"),)) for m in MODELS for f in FORMATS]
    body, content_type = multipart_related([data], "warmup")
    requests.append(Request("POST", STOW, body, ((b"Content-Type", content_type),)))
    for request in requests:
        send("127.0.0.1", gateway.port, request, timeout_s)


class _RssSampler(threading.Thread):
    def __init__(self, pid: Callable[[], int], interval_s: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s, self.peak_kib = pid, interval_s, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_campaign(
    cases: Iterable[Case],
    gateway: Gateway,
    *,
    concurrency: int = 4,
    timeout_s: float = 60.0,
    restart: Callable[[], Gateway] | None = None,
    rss_interval_s: float = 0.25,
    settle_s: float = 2.0,
    progress: Callable[[int, CampaignResult], None] | None = None,
) -> CampaignResult:
    """Send ``cases`` with at most ``concurrency`` in flight. When the gateway dies, the cases in
    flight are recorded as a :class:`Crash`; with ``restart`` a new gateway takes over and the
    campaign goes on, without it the remaining cases are counted as not sent."""
    result = CampaignResult()
    current = {"gateway": gateway}
    lock = threading.Lock()
    in_flight: dict[str, Case] = {}
    slots = threading.BoundedSemaphore(concurrency)
    result.rss_before_kib = tree_rss_kib(gateway.process.pid)
    sampler = _RssSampler(lambda: current["gateway"].process.pid, rss_interval_s)
    sampler.start()
    started = time.monotonic()

    def one(case: Case) -> None:
        try:
            target = current["gateway"]
            begin = time.monotonic()
            status, headers, body, problem = send("127.0.0.1", target.port, case.request, timeout_s)
            outcome = judge(case, status, headers, body, problem, time.monotonic() - begin)
            with lock:
                result.outcomes.append(outcome)
                in_flight.pop(case.id, None)
                if target.process.poll() is not None and current["gateway"] is target:
                    _record_crash(result, target, [case.id, *in_flight])
                    current["gateway"] = restart() if restart else target
                if progress:
                    progress(len(result.outcomes), result)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures: list[Future] = []
        for case in cases:
            slots.acquire()
            with lock:
                if current["gateway"].process.poll() is not None and restart is None:
                    result.not_sent += 1
                    slots.release()
                    continue
                in_flight[case.id] = case
            futures.append(pool.submit(one, case))
            futures = [f for f in futures if not f.done()]
        for future in futures:
            future.result()
    result.elapsed_s = time.monotonic() - started
    time.sleep(settle_s)
    sampler.stop()
    final = current["gateway"]
    result.gateway_alive = final.process.poll() is None
    result.rss_after_kib = tree_rss_kib(final.process.pid)
    result.rss_peak_kib = max(sampler.peak_kib, result.rss_before_kib, result.rss_after_kib)
    return result


def _record_crash(result: CampaignResult, gateway: Gateway, in_flight: list[str]) -> None:
    try:
        tail = "\n".join(gateway.log.read_text(errors="replace").splitlines()[-15:])
    except OSError:
        tail = ""
    result.crashes.append(Crash(gateway.process.returncode, tuple(in_flight), tail))
