"""The receive stage: a request body → DICOM parts, with the size cap enforced while it streams.

Accepted bodies (by ``Content-Type``):

- ``application/dicom``: one instance.
- ``multipart/related; type="application/dicom"``: several instances, as DICOMweb STOW-RS sends them.
- ``multipart/form-data``: several instances in file fields; the field name can pick a model input.
- ``application/zip``: a ZIP of a series (folders allowed; ``DICOMDIR`` and non-DICOM members skipped).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import EmptyBody, InvalidUpload, PayloadTooLarge, UnsupportedMediaType

DICOM = "application/dicom"
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})
ACCEPTED_TYPES = (DICOM, "multipart/related", "multipart/form-data", "application/zip")


@dataclass(frozen=True)
class DicomPart:
    """One uploaded DICOM object and, for form uploads, the field it came in."""

    data: bytes
    field: str | None = None
    filename: str | None = None


class _PartCollector:
    """python-multipart callbacks that keep each part's headers and bytes."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[bytes, bytes], bytearray]] = []
        self._field = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_part_data": lambda data, start, end: self.parts[-1][1].extend(data[start:end]),
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
        }

    def _begin(self) -> None:
        self.parts.append(({}, bytearray()))

    def _header_end(self) -> None:
        self.parts[-1][0][bytes(self._field).lower()] = bytes(self._value)
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


async def receive(request: Request, limit_bytes: int, max_parts: int) -> list[DicomPart]:
    """Read the body (never more than ``limit_bytes``) and split it into DICOM parts."""
    content_type = request.headers.get("content-type", "")
    media_type, options = parse_options_header(content_type)
    media_type = media_type.decode().lower()
    if media_type.startswith("multipart/"):
        parts = await _receive_multipart(request, media_type, options, limit_bytes)
    elif media_type == DICOM or media_type in ZIP_TYPES:
        body = bytearray()
        async for chunk in _stream(request, limit_bytes):
            body.extend(chunk)
        if not body:
            raise EmptyBody("the request body is empty; send DICOM")
        parts = [DicomPart(bytes(body))] if media_type == DICOM else _unzip(bytes(body), limit_bytes, max_parts)
    else:
        raise UnsupportedMediaType(
            f"Content-Type {media_type or 'none'} is not accepted; send one of {', '.join(ACCEPTED_TYPES)}"
        )
    if not parts:
        raise EmptyBody("the request holds no DICOM instances")
    if len(parts) > max_parts:
        raise InvalidUpload(f"the request holds {len(parts)} instances; at most {max_parts} are accepted")
    return parts


async def _receive_multipart(request: Request, media_type: str, options: dict, limit_bytes: int) -> list[DicomPart]:
    if media_type not in ("multipart/related", "multipart/form-data"):
        raise UnsupportedMediaType(f"{media_type} is not accepted; use multipart/related or multipart/form-data")
    declared_type = options.get(b"type", b"").decode().lower()
    if media_type == "multipart/related" and declared_type not in ("", DICOM):
        raise UnsupportedMediaType(f'multipart/related must carry type="{DICOM}" (got {declared_type!r})')
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidUpload("the multipart Content-Type has no boundary parameter")
    collector = _PartCollector()
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        async for chunk in _stream(request, limit_bytes):
            parser.write(chunk)
        parser.finalize()
    except PayloadTooLarge:
        raise
    except Exception as exc:  # python-multipart raises its own error types and ValueError
        raise InvalidUpload(f"the multipart body is malformed: {exc}") from exc
    parts = []
    for headers, data in collector.parts:
        part_type, _ = parse_options_header(headers.get(b"content-type", b""))
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        field = disposition.get(b"name", b"").decode() or None
        filename = disposition.get(b"filename", b"").decode() or None
        if media_type == "multipart/form-data" and filename is None and part_type.decode().lower() != DICOM:
            continue  # a plain form field (e.g. options), not a file
        if part_type and part_type.decode().lower() in ZIP_TYPES:
            parts += [DicomPart(p.data, field, p.filename) for p in _unzip(bytes(data), limit_bytes, 100_000)]
        elif data:
            parts.append(DicomPart(bytes(data), field, filename))
    return parts


def _unzip(body: bytes, limit_bytes: int, max_members: int) -> list[DicomPart]:
    """DICOM members of a ZIP; refuses archives that would expand beyond ``limit_bytes``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile as exc:
        raise InvalidUpload("the body is not a valid ZIP archive") from exc
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.upper().endswith("DICOMDIR")]
    if len(members) > max_members:
        raise InvalidUpload(f"the ZIP holds {len(members)} files; at most {max_members} are accepted")
    if sum(m.file_size for m in members) > limit_bytes:
        raise PayloadTooLarge(f"the ZIP expands beyond the limit of {limit_bytes} bytes")
    parts = []
    for member in members:
        try:
            data = archive.read(member)
        except (zipfile.BadZipFile, RuntimeError, ValueError, EOFError) as exc:
            raise InvalidUpload(f"ZIP member {member.filename!r} cannot be read: {exc}") from exc
        if len(data) >= 132 and data[128:132] == b"DICM":
            parts.append(DicomPart(data, None, member.filename))
    return parts
