"""The delivery sender: :class:`DeliveryWorker` claims due deliveries, sends their files with
the sender of their destination's kind, and records the outcome with the destination's backoff.

Senders come in kinds (:data:`SENDERS`: ``dimse`` → C-STORE SCU, ``dicomweb`` → STOW-RS); a
new kind is a module with ``send(destination, files)`` raising
:class:`~jobs.delivery.errors.DeliveryFailure`, a destination model in
:mod:`jobs.delivery.destinations`, and an entry here. A sender's module is imported when its
kind is first used, so that the job store stays free of the DICOM stack (pydicom, pynetdicom)
for the processes that only read it.
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from ..polling import PollingWorker
from .destinations import Destination
from .errors import DeliveryFailure
from .store import Delivery, DeliveryStore

__all__ = ["SENDERS", "DeliveryWorker"]

log = logging.getLogger("medserve.delivery")

#: The sender of each destination kind: ``module:function``, imported on first use.
SENDERS: dict[str, str] = {"dimse": "jobs.delivery.dimse_scu:send_dimse", "dicomweb": "jobs.delivery.stow:send_stow"}


def sender(kind: str) -> Callable[[Destination, Sequence[Path]], None]:
    """The send function of destinations of ``kind``."""
    module, function = SENDERS[kind].split(":")
    return getattr(importlib.import_module(module), function)

#: What :class:`DeliveryWorker` tells ``on_attempt``: the delivery as claimed, the outcome
#: (``delivered``, ``retry``, ``failed_export``), the error code (None when delivered) and seconds spent.
AttemptObserver = Callable[[Delivery, str, str | None, float], None]


class DeliveryWorker(PollingWorker):
    """One sender thread over ``store``, with the destinations of the routes file by name.

    ``lease_s``: how long a claim holds a delivery (longer than a send can take: a sender that
    dies frees it after that). ``poll_s``: how long an idle sender waits before looking again,
    doubled while it stays idle up to ``max_poll_s``; a delivery due later (a retry after its
    backoff) is sent at most that long after it is due.
    """

    def __init__(
        self,
        store: DeliveryStore,
        destinations: Mapping[str, Destination],
        worker_id: str | None = None,
        lease_s: float = 300.0,
        poll_s: float = 1.0,
        on_attempt: AttemptObserver | None = None,
        max_poll_s: float | None = None,
    ) -> None:
        super().__init__(worker_id or f"sender-{uuid.uuid4().hex[:12]}", poll_s, max_poll_s)
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.store, self.destinations, self.lease_s, self.on_attempt = store, dict(destinations), lease_s, on_attempt

    def run_once(self) -> Delivery | None:
        """Claim one due delivery and attempt it; the delivery as claimed, or None when none was due."""
        delivery = self.store.claim(self.worker_id, self.lease_s)
        if delivery is None:
            return None
        started = time.monotonic()
        destination = self.destinations.get(delivery.destination)
        try:
            if destination is None:
                raise DeliveryFailure("destination_unknown", f"destination {delivery.destination!r} is not in the routes file", retryable=False)
            files = [Path(name) for name in delivery.files]
            if missing := [path.name for path in files if not path.is_file()]:
                raise DeliveryFailure("output_missing", f"the job's outputs are gone: {', '.join(missing)}", retryable=False)
            sender(destination.kind)(destination, files)
        except DeliveryFailure as failure:
            outcome = self._failed(delivery, destination, failure)
            code: str | None = failure.code
        except Exception as exc:  # a sender's bug or a library surprise: counted, retried, never the worker's end
            outcome = self._failed(delivery, destination, DeliveryFailure("delivery_error", f"unexpected {type(exc).__name__}"))
            code = "delivery_error"
        else:
            outcome, code = "delivered", None
            if not self.store.delivered(delivery.id, self.worker_id):
                log.warning("delivery lease lost before it was recorded", extra={"delivery_id": delivery.id})
            log.info("delivered", extra={"delivery_id": delivery.id, "job_id": delivery.job_id, "destination": delivery.destination,
                                          "outputs": ",".join(delivery.outputs), "attempt": delivery.attempts})
        if self.on_attempt is not None:
            try:
                self.on_attempt(delivery, outcome, code, time.monotonic() - started)
            except Exception as exc:
                log.error("delivery observer failed", extra={"delivery_id": delivery.id, "error_type": type(exc).__name__})
        return delivery

    def _failed(self, delivery: Delivery, destination: Destination | None, failure: DeliveryFailure) -> str:
        """Record a failed attempt: pending again after the destination's backoff while it has
        attempts left and the failure is retryable, else dead-lettered; the outcome's name."""
        retry_at = None
        if destination is not None and failure.retryable and delivery.attempts < destination.retry.max_attempts:
            retry_at = self.store.clock() + timedelta(seconds=destination.retry.delay_s(delivery.attempts))
        self.store.failed(delivery.id, self.worker_id, failure.code, failure.message, retry_at)
        if retry_at is not None and failure.destination_down:
            self.store.hold_destination(delivery.destination, retry_at)
        outcome = "retry" if retry_at is not None else "failed_export"
        log.warning("delivery attempt failed", extra={"delivery_id": delivery.id, "job_id": delivery.job_id, "destination": delivery.destination,
                                                      "code": failure.code, "attempt": delivery.attempts, "outcome": outcome})
        return outcome
