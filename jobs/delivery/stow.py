"""Delivery by DICOMweb: the outputs of one job in one STOW-RS request (PS3.18 10.5).

``POST {url}/studies`` with a ``multipart/related; type="application/dicom"`` body, one part
per object, and ``Authorization: Bearer`` when the destination names a token. 200 stores all;
202 and 409 report objects the origin server did not store (its Failed SOP Sequence
(0008,1198)); 408, 429 and 5xx are worth another attempt; other 4xx are the server refusing
the request, which a retry would repeat.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

from .destinations import DicomwebDestination
from .errors import DeliveryFailure

__all__ = ["send_stow"]

#: Longest answer body read (bytes): a STOW answer lists the stored objects, a few KiB each.
MAX_ANSWER_BYTES = 4 << 20
_RETRYABLE_HTTP = frozenset({408, 429})


def multipart_body(files: Sequence[Path]) -> tuple[bytes, str]:
    """The request body and its Content-Type (a random boundary no part contains)."""
    contents = [path.read_bytes() for path in files]
    boundary = uuid.uuid4().hex
    while any(boundary.encode() in content for content in contents):
        boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + content + b"\r\n" for content in contents]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def _failed_objects(answer: bytes) -> int:
    """How many objects the answer's Failed SOP Sequence (0008,1198) lists (0 when unreadable)."""
    try:
        document = json.loads(answer or b"{}")
        return len((document.get("00081198") or {}).get("Value") or [])
    except (ValueError, AttributeError):
        return 0


def send_stow(destination: DicomwebDestination, files: Sequence[Path]) -> None:
    """Store every file at ``destination`` in one STOW-RS request; :class:`DeliveryFailure` otherwise."""
    body, content_type = multipart_body(files)
    headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
    if (token := destination.bearer_token()) is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = destination.url.rstrip("/") + "/studies"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=destination.timeout_s) as response:  # noqa: S310 - http(s) by the destination's pattern
            status, answer = response.status, response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, exc.read(MAX_ANSWER_BYTES)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise DeliveryFailure("destination_unreachable", f"{destination.url} did not answer ({type(exc).__name__})", destination_down=True) from None
    failed = _failed_objects(answer)
    if status == 200 and not failed:
        return
    if status in (200, 202, 409) or failed:
        raise DeliveryFailure("store_refused", f"{destination.url} did not store {failed or 'some'} of {len(files)} objects (HTTP {status})", retryable=False)
    if status in _RETRYABLE_HTTP or status >= 500:
        raise DeliveryFailure("stow_failed", f"{destination.url} answered HTTP {status}", destination_down=status >= 500)
    raise DeliveryFailure("stow_refused", f"{destination.url} refused the request with HTTP {status}", retryable=False)
