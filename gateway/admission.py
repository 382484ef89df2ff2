"""Admission control: a cap on predictions in flight, beyond which callers get 429.

Queueing without bound only moves the overload into memory and latency; rejecting at once
with Retry-After lets a client (or a load balancer) back off or try another replica.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .errors import Overloaded
from .metrics import IN_FLIGHT, REJECTIONS


class AdmissionController:
    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one slot for the duration of a prediction, or raise :class:`Overloaded`.

        Runs on the event loop only, so the counter needs no lock."""
        if self.in_flight >= self.max_in_flight:
            REJECTIONS.labels("capacity").inc()
            raise Overloaded(f"the gateway is at its limit of {self.max_in_flight} predictions in flight; retry shortly")
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()
