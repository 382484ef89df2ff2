"""The receive stage: a request body → DICOM parts, bounded as a whole while it streams.

Accepted bodies (by ``Content-Type``):

- ``application/dicom``: one instance.
- ``multipart/related; type="application/dicom"``: several instances, as DICOMweb STOW-RS sends them.
- ``multipart/form-data``: several instances in file fields; the field name can pick a model input.
- ``application/zip``: a ZIP of a series (folders allowed; ``DICOMDIR`` and non-DICOM members skipped).

One request is bounded by :class:`UploadLimits`, whatever its envelope:

- the body: ``max_body_bytes``, counted while it streams (413 ``payload_too_large``);
- multipart: a boundary as RFC 2046 §5.1.1 writes it (1–70 characters of its alphabet), at most
  ``max_parts`` parts — counted as each part begins, so part ``max_parts + 1`` stops the parse;
  a part without a body counts too — and at most ``max_part_headers`` header lines of
  ``max_part_header_line_bytes`` each per part; a malformed body, or one that ends before its
  closing boundary (a truncated upload), is 400 ``invalid_upload``;
- form-data field names must be UTF-8 (they are matched to model inputs; a name that cannot be
  decoded matches none and is refused, 400); file names are only labels and are decoded as
  UTF-8, else as Latin-1, which any byte string is;
- ZIP archives, in the body or in any number of parts: one budget of ``max_expanded_bytes``
  inflated bytes and ``max_archive_members`` files for the whole request, inflated in a worker
  thread and stopped at the first chunk beyond it (:mod:`gateway.archives`);
- at most ``max_instances`` DICOM instances in all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anyio
from fastapi import Request
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from .archives import ExpansionBudget, dicom_members
from .errors import EmptyBody, GatewayError, InvalidUpload, PayloadTooLarge, UnsupportedMediaType

DICOM = "application/dicom"
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})
ACCEPTED_TYPES = (DICOM, "multipart/related", "multipart/form-data", "application/zip")
#: RFC 2046 §5.1.1: ``boundary := 0*69<bchars> bcharsnospace``.
BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


@dataclass(frozen=True)
class UploadLimits:
    """What one request body may hold. Built from the gateway's settings by :meth:`from_settings`."""

    max_body_bytes: int = 512 * 1024 * 1024
    """Bytes of the body as sent (``MEDSERVE_MAX_UPLOAD_BYTES``)."""
    max_instances: int = 2000
    """DICOM instances in the whole request (``MEDSERVE_MAX_SERIES_INSTANCES``)."""
    max_expanded_bytes: int | None = None
    """Bytes all ZIP members of the request may inflate to; None: ``max_body_bytes``."""
    max_parts: int = 2048
    """Parts of a multipart body, plain form fields and empty parts included."""
    max_archive_members: int = 10_000
    """Files in all ZIP archives of the request (folders excepted)."""
    max_part_headers: int = 8
    """Header lines of one multipart part (a STOW-RS part sends 1–4)."""
    max_part_header_line_bytes: int = 4096
    """Bytes of one header line of a part; a part's headers are at most ``max_part_headers`` × this."""

    @property
    def expansion_budget_bytes(self) -> int:
        return self.max_body_bytes if self.max_expanded_bytes is None else self.max_expanded_bytes

    @classmethod
    def from_settings(cls, settings) -> UploadLimits:
        """The limits of :class:`gateway.config.Settings`."""
        return cls(
            max_body_bytes=settings.max_upload_bytes,
            max_instances=settings.max_series_instances,
            max_expanded_bytes=settings.max_expanded_bytes,
            max_parts=settings.max_upload_parts,
            max_archive_members=settings.max_archive_members,
        )


@dataclass(frozen=True)
class DicomPart:
    """One uploaded DICOM object and, for form uploads, the field it came in."""

    data: bytes
    field: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class _RawPart:
    """One multipart part as received: its headers (names lower-cased) and body."""

    headers: dict[bytes, bytes]
    data: bytearray


class _PartCollector:
    """python-multipart callbacks that keep each part's headers and bytes, and refuse part
    ``max_parts + 1`` the moment it begins."""

    def __init__(self, max_parts: int) -> None:
        self.max_parts = max_parts
        self.parts: list[_RawPart] = []
        self._field = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_part_data": lambda data, start, end: self.parts[-1].data.extend(data[start:end]),
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
        }

    def _begin(self) -> None:
        if len(self.parts) == self.max_parts:
            raise InvalidUpload(f"the multipart body holds more than {self.max_parts} parts")
        self.parts.append(_RawPart({}, bytearray()))

    def _header_end(self) -> None:
        self.parts[-1].headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()


async def _stream(request: Request, limit_bytes: int):
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise PayloadTooLarge(f"the body is {int(declared)} bytes; the limit is {limit_bytes}")
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {limit_bytes} bytes")
        yield chunk


async def receive(request: Request, limits: UploadLimits) -> list[DicomPart]:
    """Read the body within ``limits`` and split it into DICOM parts."""
    content_type = request.headers.get("content-type", "")
    media_type, options = parse_options_header(content_type)
    media_type = media_type.decode("latin-1")
    budget = ExpansionBudget(limits.expansion_budget_bytes, limits.max_archive_members)
    if media_type.startswith("multipart/"):
        parts = await _receive_multipart(request, media_type, options, limits, budget)
    elif media_type == DICOM or media_type in ZIP_TYPES:
        # the chunks joined once: one copy of the body (a bytearray and then bytes of it were two;
        # 91 MB: 186 -> 93 ms)
        body = b"".join([chunk async for chunk in _stream(request, limits.max_body_bytes)])
        if not body:
            raise EmptyBody("the request body is empty; send DICOM")
        if media_type == DICOM:
            parts = [DicomPart(body)]
        else:
            parts = await anyio.to_thread.run_sync(_expand, [(body, None)], budget)
    else:
        raise UnsupportedMediaType(
            f"Content-Type {media_type or 'none'} is not accepted; send one of {', '.join(ACCEPTED_TYPES)}"
        )
    if not parts:
        raise EmptyBody("the request holds no DICOM instances")
    if len(parts) > limits.max_instances:
        raise InvalidUpload(f"the request holds {len(parts)} instances; at most {limits.max_instances} are accepted")
    return parts


async def _receive_multipart(
    request: Request, media_type: str, options: dict, limits: UploadLimits, budget: ExpansionBudget
) -> list[DicomPart]:
    if media_type not in ("multipart/related", "multipart/form-data"):
        raise UnsupportedMediaType(f"{media_type} is not accepted; use multipart/related or multipart/form-data")
    declared_type = options.get(b"type", b"").decode("latin-1").lower()
    if media_type == "multipart/related" and declared_type not in ("", DICOM):
        raise UnsupportedMediaType(f'multipart/related must carry type="{DICOM}" (got {declared_type!r})')
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidUpload("the multipart Content-Type has no boundary parameter")
    if not BOUNDARY.fullmatch(boundary):
        raise InvalidUpload("the multipart boundary is not 1 to 70 characters of RFC 2046's boundary alphabet")
    collector = _PartCollector(limits.max_parts)
    try:
        parser = MultipartParser(
            boundary,
            collector.callbacks(),
            max_header_count=limits.max_part_headers,
            max_header_size=limits.max_part_header_line_bytes,
        )
        async for chunk in _stream(request, limits.max_body_bytes):
            parser.write(chunk)
        parser.finalize()
    except GatewayError:
        raise
    except Exception as exc:  # python-multipart raises its own error types, ValueError and more
        raise InvalidUpload(f"the multipart body is malformed ({type(exc).__name__})") from exc
    if parser.state != MultipartState.END:
        raise InvalidUpload("the multipart body is malformed: it ends before its closing boundary")
    parts: list[DicomPart] = []
    archives: list[tuple[bytes | bytearray, str | None]] = []
    for index, part in enumerate(collector.parts):
        part_type, field, filename = _describe(part, index)
        if media_type == "multipart/form-data" and filename is None and part_type != DICOM:
            continue  # a plain form field (e.g. options), not a file
        if part_type in ZIP_TYPES:
            archives.append((part.data, field))
        elif part.data:
            parts.append(DicomPart(bytes(part.data), field, filename))
    if archives:
        parts += await anyio.to_thread.run_sync(_expand, archives, budget)
    return parts


def _describe(part: _RawPart, index: int) -> tuple[str, str | None, str | None]:
    """A part's media type, form field name and file name (0-based ``index`` for messages)."""
    part_type, _ = parse_options_header(part.headers.get(b"content-type", b""))
    _, disposition = parse_options_header(part.headers.get(b"content-disposition", b""))
    try:
        field = disposition.get(b"name", b"").decode("utf-8") or None
    except UnicodeDecodeError as exc:
        raise InvalidUpload(f"the field name of multipart part {index} is not UTF-8") from exc
    filename = disposition.get(b"filename", b"")
    try:
        decoded_filename = filename.decode("utf-8")
    except UnicodeDecodeError:
        decoded_filename = filename.decode("latin-1")
    return part_type.decode("latin-1").lower(), field, decoded_filename or None


def _expand(archives: list[tuple[bytes | bytearray, str | None]], budget: ExpansionBudget) -> list[DicomPart]:
    """The DICOM members of every archive (with the field each came in), under one budget; in a
    worker thread, which also makes immutable copies of the multipart parts' bytearrays (a 512 MB
    copy is ~0.1 s; a body that is bytes already is not copied)."""
    return [
        DicomPart(member.data, field, member.name)
        for archive, field in archives
        for member in dicom_members(bytes(archive), budget)
    ]
