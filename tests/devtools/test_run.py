"""``medserve run``'s supervisor: restart policy, exit descriptions, and restarts of real
processes that die (the end-to-end kills of Triton and the gateway are in tests/e2e/test_recovery.py);
which repository it serves and what it writes there (a repository of one's own: nothing)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from devtools.processes import ServerProcess, free_ports
from devtools.run import (
    DEFAULT_REPOSITORY,
    DEMO_MODEL,
    RestartHistory,
    RestartPolicy,
    example_lines,
    exports_demo_zoo,
    repository_models,
    run,
    supervise,
)
from devtools.tritonserver import TritonPorts
from devtools.zoo.repository import DATA_DIR

POLICY = RestartPolicy(max_restarts=3, window_s=60.0, backoff_initial_s=0.5, backoff_max_s=1.5)


class TestRestartHistory:
    def test_backoff_doubles_up_to_its_cap_then_gives_up(self) -> None:
        history = RestartHistory(POLICY)
        assert [history.next_delay(now) for now in (0.0, 1.0, 2.0, 3.0)] == [0.5, 1.0, 1.5, None]

    def test_restarts_older_than_the_window_no_longer_count(self) -> None:
        history = RestartHistory(POLICY)
        for now in (0.0, 1.0, 2.0):
            history.next_delay(now)
        assert history.next_delay(61.5) == 1.0  # the restarts at 0 s and 1 s have aged out: this is the 2nd
        assert history.recent == 2


def test_policy_reads_its_limits_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MEDSERVE_RUN_MAX_RESTARTS", "7")
    monkeypatch.setenv("MEDSERVE_RUN_RESTART_WINDOW_S", "120")
    policy = RestartPolicy.from_environment()
    assert (policy.max_restarts, policy.window_s) == (7, 120.0)


class Command(ServerProcess):
    """A real process under supervision: ``sh -c script``, its starts counted."""

    def __init__(self, name: str, script: str) -> None:
        super().__init__(name, ["sh", "-c", script], stop_timeout_s=5.0)
        self.launches = 0

    def start(self) -> "Command":
        self.launches += 1
        return super().start()


def test_a_process_that_keeps_dying_is_restarted_then_given_up_on(capsys) -> None:
    crashing, steady = Command("crashing", "exit 3"), Command("steady", "sleep 60")
    fast = RestartPolicy(max_restarts=2, window_s=60.0, backoff_initial_s=0.01, backoff_max_s=0.01)
    for process in (crashing, steady):
        process.start()
    try:
        assert supervise([crashing, steady], fast, threading.Event()) == 1
    finally:
        steady.stop()

    assert crashing.launches == 3 and steady.launches == 1  # the other process is left alone
    err = capsys.readouterr().err
    assert err.count("crashing (pid") == 3 and "exited with code 3; restarting it in" in err
    assert "restarted 2 times within 60 s already, giving up" in err


def test_supervision_ends_when_asked_to_stop() -> None:
    steady = Command("steady", "sleep 60")
    steady.start()
    stop = threading.Event()
    stop.set()
    try:
        assert supervise([steady], POLICY, stop) == 0
    finally:
        steady.stop()
    assert steady.launches == 1


# --- which repository ``run`` serves, and what it writes into it -------------------------------------------------


def test_only_the_default_repository_gets_the_demo_zoo_unless_asked(tmp_path: Path, monkeypatch) -> None:
    assert exports_demo_zoo(DEFAULT_REPOSITORY, None)
    monkeypatch.chdir(DEFAULT_REPOSITORY.parent)
    assert exports_demo_zoo(Path("model_repository"), None)  # what ``make run`` passes, relative to the checkout
    assert not exports_demo_zoo(DEFAULT_REPOSITORY, False)  # --no-demo-models
    assert not exports_demo_zoo(tmp_path, None)
    assert exports_demo_zoo(tmp_path, True)  # --demo-models


def test_the_example_uses_a_model_the_repository_serves(tmp_path: Path) -> None:
    for name in ("zeta_model", "alpha_model"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "config.pbtxt").write_text(f'name: "{name}"\n')
    (tmp_path / "not_a_model").mkdir()  # no config.pbtxt: Triton does not load it
    assert repository_models(tmp_path) == ["alpha_model", "zeta_model"]

    own = "\n".join(example_lines(repository_models(tmp_path), "http://h:1", None))
    assert "http://h:1/v1/models/alpha_model/predict" in own and DEMO_MODEL not in own
    assert "curl -s http://h:1/v1/models/alpha_model lists its inputs" in own  # what to send it

    demo = "\n".join(example_lines(["alpha_model", DEMO_MODEL], "http://h:1", Path("/d/ct.dcm")))
    assert f"--data-binary @/d/ct.dcm http://h:1/v1/models/{DEMO_MODEL}/predict" in demo

    empty = "\n".join(example_lines([], "http://h:1", None, poll_s=5))
    assert "/predict" not in empty and "no model yet" in empty and "every 5 s" in empty


def test_a_missing_repository_is_refused_not_created(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nowhere"
    assert run(missing, tmp_path / "work", "127.0.0.1", 0, TritonPorts.free()) == 2
    assert not missing.exists() and not (tmp_path / "work").exists()
    assert f"no model repository at {missing}" in capsys.readouterr().err


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` → (size, mtime ns); the Python backend's ``__pycache__`` aside
    (the stub writes it when it imports ``model.py``)."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.e2e
def test_a_repository_of_ones_own_is_served_as_it_is(model_repository: Path, real_ct_files, tmp_path: Path) -> None:
    """One demo model copied into a repository of one's own: ``run`` starts in the usual time
    for one model (ready within 120 s; exporting the zoo takes about 2 minutes more), writes no
    model and no zoo data, serves the model, and its printed curl works as printed."""
    repository = tmp_path / "my_repo"
    shutil.copytree(model_repository / DEMO_MODEL, repository / DEMO_MODEL, ignore=shutil.ignore_patterns("__pycache__"))
    before = _snapshot(repository)
    zoo_data_before = sorted(p.name for p in DATA_DIR.iterdir()) if DATA_DIR.is_dir() else []

    *triton_ports, port, dimse_port = free_ports(5)  # all different: chosen together
    ports = TritonPorts(*triton_ports)
    work, log = tmp_path / "work", tmp_path / "run.log"
    command = [
        sys.executable, "-m", "devtools", "run", "--repository", str(repository), "--work-dir", str(work),
        "--port", str(port), "--triton-http-port", str(ports.http), "--triton-grpc-port", str(ports.grpc),
        "--triton-metrics-port", str(ports.metrics), "--dimse-port", str(dimse_port),
    ]  # fmt: skip
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=DEFAULT_REPOSITORY.parent)
    try:
        while "medserve is ready." not in log.read_text(errors="replace"):
            assert process.poll() is None, f"run exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() - started < 120, f"not ready after 120 s:\n{log.read_text()}"
            time.sleep(0.2)
        ready_s = time.monotonic() - started
        text = log.read_text(errors="replace")
        assert "exported" not in text and "writing" not in text, text  # nothing exported, no zoo data written
        assert f"serving {repository}: {DEMO_MODEL}" in text

        url = f"http://127.0.0.1:{port}"
        models = httpx.get(f"{url}/v1/models", timeout=10).json()["models"]
        assert [m["name"] for m in models] == [DEMO_MODEL]
        printed = re.search(r"--data-binary @(\S+) (\S+/predict)", text)
        assert printed and printed.group(2) == f"{url}/v1/models/{DEMO_MODEL}/predict"
        for body in (Path(printed.group(1)).read_bytes(), real_ct_files["CT_small"].read_bytes()):
            answer = httpx.post(printed.group(2), content=body, headers={"Content-Type": "application/dicom"}, timeout=30)
            assert answer.status_code == 200, answer.text
    finally:
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 0
    assert _snapshot(repository) == before  # no new model directories, nothing rewritten
    assert sorted(p.name for p in repository.iterdir()) == [DEMO_MODEL]
    assert (sorted(p.name for p in DATA_DIR.iterdir()) if DATA_DIR.is_dir() else []) == zoo_data_before
    print(f"ready in {ready_s:.1f} s")
