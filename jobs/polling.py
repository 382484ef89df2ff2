"""A worker thread that polls a store for work: the loop the job workers and the delivery
senders share.

An idle worker backs off: after each call that found nothing it waits twice as long as before,
from ``poll_s`` up to ``max_poll_s``, so that a quiet node costs almost no CPU (each poll is a
database transaction); any work found resets the wait. :meth:`PollingWorker.wake` ends a wait at
once — the process that makes work (a job submitted, a series routed, a job done with
deliveries) wakes its own workers, so only work made by another replica waits for a poll.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

__all__ = ["PollingWorker"]

log = logging.getLogger("medserve.jobs")


class PollingWorker(ABC):
    """Calls :meth:`run_once` until stopped, waiting after a call that found nothing to do
    (returned None) or failed (the database away: the thread is kept and tries again later) —
    ``poll_s`` seconds, doubled after each further idle call up to ``max_poll_s`` (default:
    ``poll_s``, no backoff). Subclasses implement :meth:`run_once`; :meth:`between` runs before
    each call."""

    def __init__(self, worker_id: str, poll_s: float, max_poll_s: float | None = None) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self.worker_id, self.poll_s = worker_id, poll_s
        self.max_poll_s = max(poll_s, max_poll_s if max_poll_s is not None else poll_s)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def run_once(self) -> object | None:
        """Take one item of work to its next state; None when there was none."""

    def between(self) -> None:
        """Periodic housekeeping before each :meth:`run_once` (nothing by default)."""

    def wake(self) -> None:
        """Look for work now (work was just made for this worker), ending any idle wait."""
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.worker_id, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop taking work; wait up to ``timeout_s`` for the item in hand to finish (one left
        unfinished is taken again by a worker once its lease expires)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        wait_s = self.poll_s
        while not self._stop.is_set():
            try:
                self.between()
                done = self.run_once()
            except Exception as exc:
                log.error("worker error", extra={"worker": self.worker_id, "error_type": type(exc).__name__})
                done = None
            if done is not None:
                wait_s = self.poll_s
                continue
            wait_s = self.poll_s if self._idle(wait_s) else min(wait_s * 2, self.max_poll_s)

    def _idle(self, wait_s: float) -> bool:
        """Wait ``wait_s`` seconds or until woken; whether it was woken (or stopped)."""
        woken = self._wake.wait(wait_s)
        self._wake.clear()
        return woken
