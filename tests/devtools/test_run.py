"""``medserve run``'s supervisor: restart policy, exit descriptions, and restarts of real
processes that die (the end-to-end kills of Triton and the gateway are in tests/e2e/test_recovery.py)."""

from __future__ import annotations

import threading

from devtools.processes import ServerProcess
from devtools.run import RestartHistory, RestartPolicy, supervise

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
