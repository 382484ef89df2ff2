"""A worker thread that polls a store for work: the loop the job workers and the delivery
senders share."""

from __future__ import annotations

import logging
import threading

__all__ = ["PollingWorker"]

log = logging.getLogger("medserve.jobs")


class PollingWorker:
    """Calls :meth:`run_once` until stopped, waiting ``poll_s`` seconds after a call that found
    nothing to do (returned None) or failed (the database away: the thread is kept and tries
    again later). Subclasses implement :meth:`run_once`; :meth:`between` runs before each call."""

    def __init__(self, worker_id: str, poll_s: float) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self.worker_id, self.poll_s = worker_id, poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object | None:
        raise NotImplementedError

    def between(self) -> None:
        """Periodic housekeeping before each :meth:`run_once` (nothing by default)."""

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.worker_id, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop taking work; wait up to ``timeout_s`` for the item in hand to finish (one left
        unfinished is taken again by a worker once its lease expires)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.between()
                done = self.run_once()
            except Exception as exc:
                log.error("worker error", extra={"worker": self.worker_id, "error_type": type(exc).__name__})
                done = None
            if done is None:
                self._stop.wait(self.poll_s)
