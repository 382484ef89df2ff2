"""Why a delivery attempt failed, by stable code (the README's delivery error table)."""

from __future__ import annotations

__all__ = ["DeliveryFailure"]


class DeliveryFailure(Exception):
    """An attempt that did not store every output. ``retryable``: another attempt may succeed
    (the destination is down or busy) — else the delivery is dead-lettered at once (the
    destination refuses what was sent: fix it, then retry through the API). ``destination_down``:
    the destination itself did not answer, so every delivery to it backs off, not only this one.
    Messages name the destination and the DICOM status or HTTP status, never a DICOM value."""

    def __init__(self, code: str, message: str, *, retryable: bool = True, destination_down: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.retryable, self.destination_down = code, message, retryable, destination_down
