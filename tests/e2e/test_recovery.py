"""The stack keeps itself up, real processes throughout.

``medserve run`` under load while its gateway or its Triton is killed (SIGKILL, as a native
abort or the OOM killer would): every request gets an answer or a connection error before its
deadline, never hangs; the dead process comes back, the other one is left alone, and the
gateway serves 200s again — through shared memory again after a Triton restart. Ctrl-C then
stops everything and leaves nothing behind. A gateway removes the shared memory a dead one
left; a Triton that stops answering costs a 3D request its deadline, not more.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest

from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume
from devtools.processes import free_ports
from devtools.tritonserver import TritonPorts, running_stubs

pytestmark = pytest.mark.e2e

CLASSIFIER = "ct_nodule_classifier"
SEG_3D = "ct_nodule_segmenter_3d"
#: MEDSERVE_TRITON_TIMEOUT_S of the stack under test; a request may take this plus its own work.
INFER_TIMEOUT_S = 5.0
#: Longest any request may take before it counts as hung.
REQUEST_DEADLINE_S = INFER_TIMEOUT_S + 10.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Stack:
    """``python -m devtools run`` (what ``make run`` starts) on free ports, its output in a log file."""

    def __init__(self, work: Path) -> None:
        *triton_ports, self.port = free_ports(4)  # all different: chosen together
        ports = TritonPorts(*triton_ports)
        self.url = f"http://127.0.0.1:{self.port}"
        self.triton_http = f"http://127.0.0.1:{ports.http}"
        self.stub_path = (work / "triton" / "backends" / "python" / "triton_python_backend_stub").resolve()
        self.log = work / "medserve-run.log"
        env = dict(
            os.environ,
            MEDSERVE_TRITON_TIMEOUT_S=str(INFER_TIMEOUT_S),
            MEDSERVE_TRITON_PROBE_TIMEOUT_S="1",
            MEDSERVE_MODEL_CACHE_TTL_S="600",  # cards stay cached: requests reach Triton while it is down
            MEDSERVE_RETRY_AFTER_S="1",
            MEDSERVE_RUN_MAX_RESTARTS="3",
        )
        command = [
            sys.executable, "-m", "devtools", "run",
            "--repository", str(PROJECT_ROOT / "model_repository"), "--work-dir", str(work),
            "--port", str(self.port), "--triton-http-port", str(ports.http),
            "--triton-grpc-port", str(ports.grpc), "--triton-metrics-port", str(ports.metrics),
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=PROJECT_ROOT)
        self.wait_for_log("medserve is ready.", timeout_s=180)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout_s: float = 60.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout_s
        while self.text().count(needle) < count:
            assert self.process.poll() is None, f"medserve run exited with {self.process.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {needle!r} after {timeout_s:.0f} s:\n{self.text()}"
            time.sleep(0.1)

    def pid(self, process: str) -> int:
        """The latest pid ``medserve run`` reported for ``process`` (gateway, tritonserver)."""
        return int(re.findall(rf"{process} (?:ready|restarted) \(pid (\d+)\)", self.text())[-1])

    def interrupt(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C, as a terminal sends it; the exit status."""
        os.kill(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.interrupt()


@dataclass
class Answer:
    started: float
    seconds: float
    outcome: int | str  # HTTP status, "connection error" or "hung"


@dataclass
class Load:
    """``clients`` threads posting ``bodies`` round-robin until stopped; every answer recorded."""

    url: str
    bodies: list[tuple[str, dict, bytes]]  # model, headers, body
    clients: int = 4
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]

    def _client(self, index: int) -> None:
        with httpx.Client(timeout=REQUEST_DEADLINE_S) as client:
            sent = index
            while not self._stop.is_set():
                model, headers, body = self.bodies[sent % len(self.bodies)]
                sent += 1
                started = time.monotonic()
                try:
                    outcome: int | str = client.post(f"{self.url}/v1/models/{model}/predict", content=body, headers=headers).status_code
                except httpx.TimeoutException:
                    outcome = "hung"
                except httpx.TransportError:
                    outcome = "connection error"
                self.answers.append(Answer(started, time.monotonic() - started, outcome))
                if outcome != 200:
                    time.sleep(0.1)  # as a client that honours Retry-After would, only sooner

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_DEADLINE_S + 5)

    def wait_for_ok(self, after: float, timeout_s: float = 90.0) -> float:
        """When the first request sent after ``after`` was answered 200."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = [a.started + a.seconds for a in list(self.answers) if a.started >= after and a.outcome == 200]
            if done:
                return min(done)
            time.sleep(0.05)
        raise AssertionError(f"no 200 within {timeout_s:.0f} s; outcomes: {self.outcomes()}")

    def outcomes(self) -> dict[int | str, int]:
        counts: dict[int | str, int] = {}
        for answer in self.answers:
            counts[answer.outcome] = counts.get(answer.outcome, 0) + 1
        return counts


@pytest.fixture(scope="module")
def stack(model_repository, tmp_path_factory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("medserve-run"))
    try:
        yield running
    finally:
        running.kill()


@pytest.fixture(scope="module")
def small_series(tmp_path_factory) -> tuple[dict, bytes]:
    """A 3D CT series (16 slices of 96x96) as one multipart/form-data body: one 32x96x96 patch,
    whose 1.2 MB input goes through shared memory."""
    volume, _ = chest_volume(np.random.default_rng(5), slices=16, size=96, nodules=1)
    paths = write_ct_series(tmp_path_factory.mktemp("series"), volume, spacing_mm=(4.0, 2.0, 2.0))
    request = httpx.Request("POST", "http://x", files=[("series", (p.name, p.read_bytes(), "application/dicom")) for p in paths])
    return {"Content-Type": request.headers["Content-Type"]}, request.read()


@pytest.fixture(scope="module")
def ct_bodies(real_ct_files) -> list[tuple[str, dict, bytes]]:
    return [(CLASSIFIER, {"Content-Type": "application/dicom"}, path.read_bytes()) for path in real_ct_files.values()]


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet waited for, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _shared_memory_regions(triton_http: str) -> list[str]:
    with urllib.request.urlopen(f"{triton_http}/v2/systemsharedmemory/status", timeout=5) as response:
        return [region["name"] for region in json.load(response)]


def test_a_killed_gateway_is_restarted_under_load_without_touching_triton(stack: Stack, ct_bodies) -> None:
    triton_pid, gateway_pid = stack.pid("tritonserver"), stack.pid("gateway")
    with Load(stack.url, ct_bodies, clients=4) as load:
        load.wait_for_ok(after=0)
        killed_at = time.monotonic()
        os.kill(gateway_pid, signal.SIGKILL)
        stack.wait_for_log("gateway restarted (pid")
        back_at = load.wait_for_ok(after=killed_at)
    slowest = max(answer.seconds for answer in load.answers)
    print(f"\ngateway SIGKILL -> first 200: {back_at - killed_at:.2f} s; outcomes {load.outcomes()}; slowest {slowest:.2f} s")

    assert set(load.outcomes()) <= {200, "connection error"}, load.outcomes()
    assert max(answer.seconds for answer in load.answers) < REQUEST_DEADLINE_S
    assert "gateway (pid %d) killed by signal SIGKILL (9); restarting it" % gateway_pid in stack.text()
    assert stack.pid("gateway") != gateway_pid
    assert "tritonserver restarted" not in stack.text() and _alive(triton_pid)


def test_a_killed_triton_is_restarted_its_stubs_reaped_and_the_gateway_recovers(stack: Stack, ct_bodies, small_series) -> None:
    triton_pid, gateway_pid = stack.pid("tritonserver"), stack.pid("gateway")
    stubs = running_stubs(stack.stub_path)
    assert stubs and all(stub.region for stub in stubs)
    series = (SEG_3D, *small_series)
    with Load(stack.url, [*ct_bodies, series], clients=4) as load:
        load.wait_for_ok(after=0)
        killed_at = time.monotonic()
        os.kill(triton_pid, signal.SIGKILL)
        readiness_while_down = httpx.get(f"{stack.url}/readyz", timeout=10).status_code
        stack.wait_for_log("tritonserver restarted (pid")
        restarted_at = time.monotonic()
        back_at = load.wait_for_ok(after=restarted_at)
    print(
        f"\ntriton SIGKILL -> restarted {restarted_at - killed_at:.2f} s -> first 200 {back_at - restarted_at:.2f} s "
        f"(total {back_at - killed_at:.2f} s); outcomes {load.outcomes()}; slowest {max(a.seconds for a in load.answers):.2f} s"
    )

    assert readiness_while_down == 503
    assert set(load.outcomes()) <= {200, 503, 504}, load.outcomes()
    assert 503 in load.outcomes()
    assert max(answer.seconds for answer in load.answers) < REQUEST_DEADLINE_S
    assert f"tritonserver (pid {triton_pid}) killed by signal SIGKILL (9); restarting it" in stack.text()
    assert not any(_alive(stub.pid) for stub in stubs)
    assert not any(Path("/dev/shm", stub.region).exists() for stub in stubs if stub.region)
    assert stack.pid("gateway") == gateway_pid and _alive(gateway_pid)

    headers, body = small_series
    assert httpx.post(f"{stack.url}/v1/models/{SEG_3D}/predict", content=body, headers=headers, timeout=30).status_code == 200
    assert any(name.startswith(f"medserve_{gateway_pid}_") for name in _shared_memory_regions(stack.triton_http))
    assert httpx.get(f"{stack.url}/readyz", timeout=10).status_code == 200


def test_a_dead_gateways_regions_are_removed_when_a_gateway_starts(triton, start_gateway) -> None:
    import tritonclient.grpc as grpcclient

    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f"medserve_{dead.pid}_0"
    path = Path("/dev/shm", name)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.posix_fallocate(fd, 0, 4096)
    os.close(fd)
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    try:
        client.register_system_shared_memory(name, "/" + name, 4096)
        assert name in client.get_system_shared_memory_status(as_json=True)["regions"]

        start_gateway()

        deadline = time.monotonic() + 10
        while (path.exists() or name in client.get_system_shared_memory_status(as_json=True).get("regions", {})) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not path.exists()
        assert name not in client.get_system_shared_memory_status(as_json=True).get("regions", {})
    finally:
        path.unlink(missing_ok=True)
        client.unregister_system_shared_memory(name)
        client.close()


def _timed_post(url: str, headers: dict, body: bytes) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(f"{url}/v1/models/{SEG_3D}/predict", content=body, headers=headers, timeout=60)
    return response, time.monotonic() - started


def test_a_3d_request_with_a_tiny_timeout_answers_504_within_it(triton, start_gateway, small_series) -> None:
    gateway = start_gateway(triton_timeout_s="0.01")

    response, seconds = _timed_post(gateway.url, *small_series)

    assert response.status_code == 504 and response.json()["code"] == "inference_timeout"
    assert seconds < 0.01 + 1.0


def test_a_triton_that_stops_answering_costs_a_3d_request_its_deadline_and_no_more(triton, start_gateway, small_series) -> None:
    gateway = start_gateway(triton_timeout_s="1", triton_probe_timeout_s="5", model_cache_ttl_s="600")
    assert _timed_post(gateway.url, *small_series)[0].status_code == 200  # model card cached, one region registered

    os.kill(triton.pid, signal.SIGSTOP)  # Triton stops answering anything
    try:
        pooled = _timed_post(gateway.url, *small_series)  # the pooled region: retired after the timeout
        fresh = _timed_post(gateway.url, *small_series)  # a new region: registered within the deadline, or not
    finally:
        os.kill(triton.pid, signal.SIGCONT)

    for response, seconds in (pooled, fresh):
        assert response.status_code == 504 and response.json()["code"] == "inference_timeout"
        assert seconds < 1.0 + 1.0
    assert _timed_post(gateway.url, *small_series)[0].status_code == 200
    assert any(name.startswith(f"medserve_{gateway.process.pid}_") for name in _shared_memory_regions(triton.http_url))


def test_ctrl_c_stops_everything_and_leaves_nothing_behind(stack: Stack) -> None:
    triton_pid, gateway_pid = stack.pid("tritonserver"), stack.pid("gateway")
    stubs = running_stubs(stack.stub_path)

    assert stack.interrupt() == 0

    assert not _alive(triton_pid) and not _alive(gateway_pid)
    assert running_stubs(stack.stub_path) == []
    leftovers = [name for name in os.listdir("/dev/shm") if name.startswith(f"medserve_{gateway_pid}_")]
    leftovers += [stub.region for stub in stubs if stub.region and Path("/dev/shm", stub.region).exists()]
    assert leftovers == []
