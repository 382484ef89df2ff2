"""The gateway's senders: the DICOM outputs of finished jobs go to the destinations their
route names (:mod:`jobs.delivery`), with retries, counted in :mod:`gateway.metrics`."""

from __future__ import annotations

import os
import socket

from jobs.delivery import Delivery, DeliveryStore, DeliveryWorker
from jobs.routing import RoutingRules
from jobs.store import JobStore

from .config import Settings
from .metrics import DELIVERY_ATTEMPTS, DELIVERY_LATENCY

__all__ = ["start_delivery_workers"]


#: The outcomes of an attempt (:class:`jobs.delivery.DeliveryWorker`).
OUTCOMES = ("delivered", "retry", "failed_export")


def _observe(delivery: Delivery, outcome: str, code: str | None, seconds: float) -> None:
    """Each attempt in ``medserve_delivery_attempts_total`` and ``medserve_delivery_seconds``."""
    DELIVERY_ATTEMPTS.labels(delivery.destination, outcome).inc()
    DELIVERY_LATENCY.labels(delivery.destination).observe(seconds)


def start_delivery_workers(settings: Settings, store: JobStore, rules: RoutingRules) -> list[DeliveryWorker]:
    """``MEDSERVE_DELIVERY_WORKERS`` sender threads over the job store's deliveries, knowing the
    destinations of ``MEDSERVE_ROUTES``; none when it defines no destination (a delivery whose
    destination is not defined waits, pending, for a replica that knows it)."""
    if not rules.destinations:
        return []
    for name in rules.destinations:  # every destination's outcomes from 0, so increase() sees their first count
        for outcome in OUTCOMES:
            DELIVERY_ATTEMPTS.labels(name, outcome)
    deliveries = DeliveryStore(store.engine)
    workers = [
        DeliveryWorker(
            deliveries, rules.destinations, f"{socket.gethostname()}-{os.getpid()}-send{index}",
            lease_s=settings.delivery_lease_s, poll_s=settings.delivery_poll_s, on_attempt=_observe,
            max_poll_s=settings.worker_idle_poll_max_s,
        )
        for index in range(settings.delivery_workers)
    ]
    for worker in workers:
        worker.start()
    return workers
