"""UIDs derived from what a result is, so that encoding the same result again gives the same
DICOM objects.

A SEG, SR or secondary capture made twice from one model run (a job retried after a crash, a
delivery repeated, ``format=seg`` and ``format=sr`` asked separately) must carry the same
Series and SOP Instance UIDs: a PACS then stores one object, not two, and an SR's reference to
its SEG finds the SEG that was actually sent. Such UIDs are ``2.25.<n>`` (PS3.5 B.2: a UUID as
a decimal integer) with ``n`` the first 128 bits of a SHA-256 of the parts that identify the
object (the model and its version, the source instances, the result's own bytes, the object's
kind) — at most 44 characters, within the 64 a UID may have.
"""

from __future__ import annotations

import hashlib

__all__ = ["derived_uid"]


def derived_uid(*parts: str | bytes) -> str:
    """A ``2.25`` UID determined by ``parts`` (strings or bytes, in order): the same parts give
    the same UID; any difference gives another, with the collision odds of a random UUID."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        digest.update(len(data).to_bytes(8, "big"))  # ("ab", "c") and ("a", "bc") differ
        digest.update(data)
    return f"2.25.{int.from_bytes(digest.digest()[:16], 'big')}"
