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
#: A local file header: 30 bytes, of which the name's and the extra field's lengths end it.
_LOCAL_HEADER_BYTES = 30
_LOCAL_NAME_EXTRA = struct.Struct("<HH")
#: Compressed bytes fed first, as zipfile does: the Part 10 prefix needs only a few.
_FIRST_WINDOW_BYTES = 4096
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
    view = memoryview(archive_bytes)
    members = []
    for index, entry in enumerate(entries):
        if entry.is_dir():
            continue
        budget.charge_member()
        if entry.filename.upper().endswith("DICOMDIR"):
            continue
        prefix = _peek(archive, entry, index)
        if prefix[128:132] != b"DICM":
            budget.charge_bytes(len(prefix))
            continue
        data = _inflate(view, entry, index, budget.charge_bytes)
        members.append(ArchiveMember(data, index, entry.filename))
    return members


def _peek(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, index: int) -> bytes:
    """The member's first :data:`PART10_PREFIX_BYTES` bytes, read by :mod:`zipfile`, which also
    checks the local header against the central directory (a first window of 4 KiB, whose CRC-32
    is checked when it holds the whole member)."""
    if entry.flag_bits & 0x1:
        raise InvalidUpload(f"ZIP member {index} is encrypted")
    if entry.compress_type not in _READABLE_METHODS:
        raise InvalidUpload(f"ZIP member {index} uses compression method {entry.compress_type}; only stored and deflate are read")
    try:
        with archive.open(entry) as member:
            return member.read(PART10_PREFIX_BYTES)
    except _ZIP_ERRORS as exc:
        raise _unreadable(index, exc) from exc


def _inflate(view: memoryview, entry: zipfile.ZipInfo, index: int, charge) -> bytes:
    """The whole member, read from ``view`` without copying its compressed bytes, as
    :class:`zipfile.ZipExtFile` reads it: at most the declared ``file_size`` bytes, then its CRC-32.
    ``charge`` is called as the caller's reads charged it — the first :data:`PART10_PREFIX_BYTES`,
    then each :data:`CHUNK_BYTES` before more is inflated, the rest once the CRC-32 holds — so a
    member over the budget or corrupt is refused at the same point. The local header is the one
    :func:`_peek` checked."""
    try:
        name_bytes, extra_bytes = _LOCAL_NAME_EXTRA.unpack_from(view, entry.header_offset + 26)
        start = entry.header_offset + _LOCAL_HEADER_BYTES + name_bytes + extra_bytes
        data = view[start : start + entry.compress_size]
        read = _deflated_reader(data, entry.compress_size) if entry.compress_type == zipfile.ZIP_DEFLATED else _stored_reader(data, entry.compress_size)
        kept, crc, produced, charged, left = [], 0, 0, 0, entry.file_size
        boundary = PART10_PREFIX_BYTES
        while left > 0:
            if produced >= boundary:
                charge(produced - charged)
                charged = produced
                boundary = produced + CHUNK_BYTES
            piece, done = read(boundary - produced, left)
            piece = piece[:left]
            left -= len(piece)
            produced += len(piece)
            crc = zlib.crc32(piece, crc)
            kept.append(piece)
            if done:
                break
        if crc != entry.CRC:
            raise zipfile.BadZipFile("Bad CRC-32")
    except _ZIP_ERRORS as exc:
        raise _unreadable(index, exc) from exc
    charge(produced - charged)
    return kept[0] if len(kept) == 1 else b"".join(kept)


def _deflated_reader(data: memoryview, compressed_size: int):
    """``read(at_most, left) -> (inflated bytes, done)``: at most ``at_most`` bytes (a little more
    when the stream ends), fed 4 KiB first, then :data:`CHUNK_BYTES` of compressed bytes at a time;
    EOFError when the archive ends before ``compressed_size``."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    position = 0

    def read(at_most: int, left: int) -> tuple[bytes, bool]:
        nonlocal position
        pending = inflater.unconsumed_tail
        if not pending:
            if position >= compressed_size:
                return b"", True
            pending = data[position : position + (CHUNK_BYTES if position else _FIRST_WINDOW_BYTES)]
            if not pending:
                raise EOFError
            position += len(pending)
        piece = inflater.decompress(pending, at_most)
        done = inflater.eof or (position >= compressed_size and not inflater.unconsumed_tail)
        return (piece + inflater.flush(), True) if done else (piece, False)

    return read


def _stored_reader(data: memoryview, compressed_size: int):
    """``read(at_most, left) -> (bytes, done)`` of a stored member; EOFError when the archive ends
    before ``compressed_size``."""
    position = 0

    def read(at_most: int, left: int) -> tuple[bytes, bool]:
        nonlocal position
        if position >= compressed_size:
            return b"", True
        piece = bytes(data[position : position + min(at_most, left)])
        if not piece:
            raise EOFError
        position += len(piece)
        return piece, position >= compressed_size

    return read


def _unreadable(index: int, exc: BaseException) -> InvalidUpload:
    return InvalidUpload(f"ZIP member {index} cannot be read ({type(exc).__module__}.{type(exc).__name__})")
