"""Results back to the hospital: the destinations a route sends a job's DICOM outputs to, the
durable record of each delivery, and the senders that C-STORE or STOW-RS them with retries."""

from .destinations import DESTINATION_OUTPUTS, Destination, DicomwebDestination, DimseDestination, RetryPolicy, Send
from .errors import DeliveryFailure
from .store import DELIVERY_STATES, Delivery, DeliveryStore
from .worker import SENDERS, DeliveryWorker

__all__ = [
    "DELIVERY_STATES",
    "DESTINATION_OUTPUTS",
    "SENDERS",
    "Delivery",
    "DeliveryFailure",
    "DeliveryStore",
    "DeliveryWorker",
    "Destination",
    "DicomwebDestination",
    "DimseDestination",
    "RetryPolicy",
    "Send",
]
