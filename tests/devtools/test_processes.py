"""The one way the development stack starts and stops its servers: real processes throughout
(``sh``, ``python -m http.server``); the gateway's environment without starting it."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.processes import CHECKOUT, GatewayProcess, ServerProcess, ServerStartFailed, describe_exit, free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    return state != "Z"


@pytest.mark.parametrize(
    ("returncode", "description"),
    [
        (134, "exited with code 134"),  # a C abort() seen through a shell
        (0, "exited with code 0"),
        (-9, "killed by signal SIGKILL (9)"),  # kill -9, the OOM killer
        (-6, "killed by signal SIGABRT (6)"),  # a native decoder's assertion
    ],
)
def test_exit_descriptions_name_the_code_or_signal(returncode: int, description: str) -> None:
    assert describe_exit(returncode) == description


def test_a_server_is_ready_when_its_url_answers_then_stops(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess("http", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], cwd=tmp_path, log=tmp_path / "http.log")
    with server:
        assert server.wait_ready(f"http://127.0.0.1:{port}/", timeout_s=30) is True
        assert server.alive and server.returncode is None
    assert not server.alive and server.returncode is not None
    server.stop()  # again: nothing happens


def test_a_server_that_exits_fails_at_once_with_its_log(tmp_path: Path) -> None:
    server = ServerProcess("crashing", ["sh", "-c", "echo 'cannot bind'; exit 3"], log=tmp_path / "crashing.log").start()
    started = time.monotonic()
    with pytest.raises(ServerStartFailed, match=r"crashing exited with code 3 before it was ready:\ncannot bind"):
        server.wait_ready(f"http://127.0.0.1:{free_port()}/", timeout_s=60)
    assert time.monotonic() - started < 10


def test_a_server_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    server = ServerProcess("silent", ["sleep", "60"], log=tmp_path / "silent.log").start()
    with pytest.raises(ServerStartFailed, match="silent not ready after 0.5 s"):
        server.wait_ready(f"http://127.0.0.1:{free_port()}/", timeout_s=0.5)
    assert not server.alive


def test_waiting_ends_when_cancelled(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with ServerProcess("silent", ["sleep", "60"], log=tmp_path / "silent.log") as server:
        assert server.wait_ready(f"http://127.0.0.1:{free_port()}/", timeout_s=60, cancel=cancel) is False
        assert server.alive


def test_stop_reaches_the_whole_group_and_restart_starts_again(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    server = ServerProcess("forking", ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], log=tmp_path / "forking.log").start()
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child, first = int(pid_file.read_text()), server.pid
    server.restart()
    try:
        assert server.alive and server.pid != first
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)  # the worker of the first run went with it
    finally:
        server.stop(timeout_s=5)


def test_the_gateway_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/somebody/elses")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    one = GatewayProcess("127.0.0.1:8001", tmp_path, settings={"log_level": "debug"})
    two = GatewayProcess("127.0.0.1:8001", tmp_path, settings={"workers": "2"}, source=tmp_path)

    assert one.command == [sys.executable, "-m", "gateway.server"] and one.cwd == CHECKOUT
    assert one.env["MEDSERVE_TRITON_GRPC_URL"] == "127.0.0.1:8001" and one.env["MEDSERVE_LOG_LEVEL"] == "debug"
    assert one.env["MEDSERVE_PORT"] == str(one.port) and one.url == f"http://127.0.0.1:{one.port}"
    assert one.env["PYTHONPATH"] == f"{CHECKOUT}{os.pathsep}/elsewhere"
    assert "PROMETHEUS_MULTIPROC_DIR" not in one.env  # one worker: the gateway keeps metrics in memory
    assert one.log == tmp_path / f"gateway-{one.port}.log"

    assert two.cwd == tmp_path.resolve() and two.env["PYTHONPATH"].startswith(f"{tmp_path.resolve()}{os.pathsep}")
    assert two.env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / f"metrics-{two.port}") == str(two.metrics_dir)
    assert two.port != one.port

    to_stdout = GatewayProcess("127.0.0.1:8001", port=8080)
    assert to_stdout.log is None and to_stdout.metrics_dir is None and to_stdout.url == "http://127.0.0.1:8080"


def test_free_ports_are_all_different() -> None:
    """Triton refuses to start when two of its ports coincide; asked for together they never do."""
    from devtools.processes import free_ports

    for _ in range(50):
        ports = free_ports(3)
        assert len(set(ports)) == 3
