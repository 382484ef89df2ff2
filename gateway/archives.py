"""ZIP archives → DICOM members, inflated under one budget shared by the whole request.

A ZIP is attacker-written: the sizes its headers declare (``ZipInfo.file_size``), its member
count and its compression are all claims. So:

- members are inflated in chunks of :data:`CHUNK_BYTES` and the bytes *actually produced* are
  charged to an :class:`ExpansionBudget` that every archive of one request shares; the first
  chunk beyond it stops the work (413 ``payload_too_large``). A member that declares 0 bytes
  and inflates to gigabytes, the same compressed data referenced by many overlapping entries,
  or three archives in three multipart parts are all bounded by the same count;
- the central directory is not parsed when the archive holds more entry signatures
  (``PK\\x01\\x02``) than members are left: :mod:`zipfile` would build one Python object per
  entry, and a 512 MB body holds eleven million 46-byte entries;
- only *stored* and *deflate* members are read (bzip2 and LZMA inflate a whole read chunk at
  once, without an output bound); encrypted members, corrupt deflate data, a bad CRC-32 and
  unreadable headers are 400 ``invalid_upload``;
- a member is named in messages by its index in the archive, never by its file name: names in
  hospital archives often carry the patient's name;
- nested archives are not expanded (a member that is a ZIP is simply not DICOM), and a member
  whose first 132 bytes are not a Part 10 preamble is skipped after those bytes.

This is CPU-bound work: callers run it in a worker thread, off the event loop.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

from .errors import InvalidUpload, PayloadTooLarge

#: Inflated bytes read from a member at a time: the most a member produces past the budget.
CHUNK_BYTES = 1 << 20
#: Part 10 files start with a 128-byte preamble and the magic ``DICM``.
PART10_PREFIX_BYTES = 132
_CENTRAL_DIRECTORY_SIGNATURE = b"PK\x01\x02"
_READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
#: What zipfile and zlib raise on a malformed archive: bad headers (BadZipFile, struct.error),
#: undecodable names (ValueError), corrupt or truncated data (zlib.error, EOFError), methods it
#: lacks (NotImplementedError), encryption (RuntimeError).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)


class ExpansionBudget:
    """What one request may still inflate from its archives: bytes and members (every file
    entry counts, DICOM or not, directories excepted)."""

    def __init__(self, max_bytes: int, max_members: int) -> None:
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.inflated_bytes = 0
        self.members = 0

    @property
    def members_left(self) -> int:
        return self.max_members - self.members

    def charge_member(self) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise InvalidUpload(f"the request's archives hold more than {self.max_members} files")

    def charge_bytes(self, inflated: int) -> None:
        self.inflated_bytes += inflated
        if self.inflated_bytes > self.max_bytes:
            raise PayloadTooLarge(f"the request's archives expand beyond the limit of {self.max_bytes} bytes")


@dataclass(frozen=True)
class ArchiveMember:
    """A DICOM member: its bytes, its index in the archive, and its file name (kept for the caller;
    never put in a message or a log, since it may carry a patient's name)."""

    data: bytes
    index: int
    name: str


def dicom_members(archive_bytes: bytes, budget: ExpansionBudget) -> list[ArchiveMember]:
    """The DICOM members of one ZIP, charged to ``budget``; ``DICOMDIR``, folders and members
    that are not Part 10 are skipped."""
    if archive_bytes.count(_CENTRAL_DIRECTORY_SIGNATURE) > budget.members_left:
        raise InvalidUpload(f"the request's archives hold more than {budget.max_members} files")
    try:
        archive = zipfile.ZipFile(io.BytesIO(archive_bytes))
        entries = archive.infolist()
    except _ZIP_ERRORS as exc:
        raise InvalidUpload(f"the body is not a valid ZIP archive ({type(exc).__module__}.{type(exc).__name__})") from exc
    members = []
    for index, entry in enumerate(entries):
        if entry.is_dir():
            continue
        budget.charge_member()
        if entry.filename.upper().endswith("DICOMDIR"):
            continue
        data = _inflate_dicom(archive, entry, index, budget)
        if data is not None:
            members.append(ArchiveMember(data, index, entry.filename))
    return members


def _inflate_dicom(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, index: int, budget: ExpansionBudget) -> bytes | None:
    """The member's bytes, or None when its first bytes are not a Part 10 preamble."""
    if entry.flag_bits & 0x1:
        raise InvalidUpload(f"ZIP member {index} is encrypted")
    if entry.compress_type not in _READABLE_METHODS:
        raise InvalidUpload(f"ZIP member {index} uses compression method {entry.compress_type}; only stored and deflate are read")
    data = bytearray()
    try:
        with archive.open(entry) as member:
            prefix = member.read(PART10_PREFIX_BYTES)
            budget.charge_bytes(len(prefix))
            if prefix[128:132] != b"DICM":
                return None
            data += prefix
            while chunk := member.read(CHUNK_BYTES):
                budget.charge_bytes(len(chunk))
                data += chunk
    except _ZIP_ERRORS as exc:
        raise InvalidUpload(f"ZIP member {index} cannot be read ({type(exc).__module__}.{type(exc).__name__})") from exc
    return bytes(data)
