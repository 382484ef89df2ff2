"""The polling loop of job workers and senders: an idle worker waits twice as long after each
idle look, up to its ceiling; work found or a wake-up brings the wait back to the poll interval;
a look that fails keeps the thread. The waits are recorded, not slept."""

from __future__ import annotations

import threading

from jobs.polling import PollingWorker


class Scripted(PollingWorker):
    """``run_once`` answers from ``outcomes`` (an exception is raised); each idle wait is
    recorded (the last look's too) and woken when ``wakes`` says so; stops when the script is spent."""

    def __init__(self, outcomes: list, wakes: set[int] = frozenset(), poll_s: float = 0.5, max_poll_s: float | None = 4.0) -> None:
        super().__init__("scripted", poll_s, max_poll_s)
        self.outcomes, self.wakes, self.waits = list(outcomes), wakes, []

    def run_once(self):
        outcome = self.outcomes.pop(0)
        if not self.outcomes:
            self._stop.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _idle(self, wait_s: float) -> bool:
        self.waits.append(wait_s)
        return len(self.waits) - 1 in self.wakes


def test_an_idle_worker_doubles_its_wait_up_to_its_ceiling() -> None:
    worker = Scripted([None] * 6)
    worker._loop()
    assert worker.waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_work_found_brings_the_wait_back_to_the_poll_interval() -> None:
    worker = Scripted([None, None, None, "job", None, None])
    worker._loop()
    assert worker.waits == [0.5, 1.0, 2.0, 0.5, 1.0]


def test_a_wake_up_brings_the_wait_back_to_the_poll_interval() -> None:
    worker = Scripted([None] * 6, wakes={2})
    worker._loop()
    assert worker.waits == [0.5, 1.0, 2.0, 0.5, 1.0, 2.0]


def test_a_failed_look_is_waited_out_like_an_idle_one_and_the_thread_kept() -> None:
    worker = Scripted([RuntimeError("database away"), None, "job", None])
    worker._loop()
    assert worker.waits == [0.5, 1.0, 0.5]


def test_without_a_ceiling_the_wait_stays_the_poll_interval() -> None:
    worker = Scripted([None] * 3, max_poll_s=None)
    worker._loop()
    assert worker.waits == [0.5, 0.5, 0.5]


def test_wake_ends_a_real_wait_at_once_and_stop_ends_the_thread() -> None:
    class Idle(PollingWorker):
        def __init__(self) -> None:
            super().__init__("idle", poll_s=3600)
            self.looked = threading.Event()
            self.looks = 0

        def run_once(self):
            self.looks += 1
            if self.looks == 2:
                self.looked.set()
            return None

    worker = Idle()
    worker.start()
    worker.wake()  # the hour's wait ends: a second look follows at once
    assert worker.looked.wait(30)
    worker.stop(timeout_s=30)
    assert not worker._thread.is_alive()
