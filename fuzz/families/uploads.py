"""Envelope abuse: multipart bodies with broken boundaries or parts, ZIP archives that are
bombs, huge in member count, corrupt, or over the decompressed budget across several parts.

The budget the bombs aim at is the gateway's upload cap; the fuzz stack runs the gateway with
``MEDSERVE_MAX_UPLOAD_BYTES`` = :data:`UPLOAD_CAP_BYTES` so that bombs over it stay cheap.
"""

from __future__ import annotations

import functools
import struct
import zipfile
import zlib

from ..cases import Request
from ..envelopes import STOW, boundary, form_data, multipart_related, random_predict_target, zip_of
from . import family

UPLOAD_CAP_BYTES = 96 << 20


def _target(rng) -> str:
    return STOW if rng.random() < 0.3 else random_predict_target(rng)


@family
def multipart_boundaries(rng, corpus):
    """Boundaries that are long (71 to 100,000 characters), illegal (spaces, quotes, non-ASCII,
    CR/LF), empty, missing, or different from the one the body uses."""
    data = corpus.bytes(rng.choice(("CT_small.dcm", "MR_small.dcm")))
    kind = rng.choice(("long", "huge", "illegal", "empty", "missing", "mismatch", "unquoted_semicolon", "non_ascii"))
    mark = {
        "long": lambda: "b" * rng.choice((71, 300, 1000)),
        "huge": lambda: "b" * 100_000,
        "illegal": lambda: rng.choice(("a b ", 'a"b', "a\tb", "--", "a;b=c")),
        "empty": lambda: "",
        "missing": lambda: "",
        "mismatch": lambda: boundary(rng),
        "unquoted_semicolon": lambda: "x;y",
        "non_ascii": lambda: "bé\u2603",
    }[kind]()
    encoded = mark.encode("utf-8")
    body, _ = multipart_related([data], mark.encode("latin-1", "replace").decode("latin-1"))
    body = body.replace(mark.encode("latin-1", "replace"), encoded)
    declared = b"" if kind == "missing" else b"; boundary=" + (boundary(rng).encode() if kind == "mismatch" else encoded)
    media = rng.choice((b'multipart/related; type="application/dicom"', b"multipart/form-data"))
    return Request("POST", _target(rng), body, ((b"Content-Type", media + declared),), f"boundary {kind} ({len(encoded)} B)")


@family
def multipart_parts(rng, corpus):
    """Parts many (10,000 empty), empty, without headers, with non-UTF-8 field names, nested
    multipart, wrong part types, no closing boundary, LF instead of CRLF."""
    data = corpus.bytes(rng.choice(("CT_small.dcm", "MR_small.dcm")))
    mark = boundary(rng)
    kind = rng.choice(("many_empty", "empty", "no_headers", "non_utf8_name", "nested", "wrong_type", "unclosed", "lf_only", "huge_part_header"))
    if kind == "many_empty":
        body, content_type = multipart_related([b""] * rng.choice((1000, 10000)), mark)
    elif kind == "empty":
        body, content_type = multipart_related([b""], mark)
    elif kind == "no_headers":
        body = b"--%s\r\n\r\n%s\r\n--%s--\r\n" % (mark.encode(), data, mark.encode())
        content_type = b"multipart/form-data; boundary=" + mark.encode()
    elif kind == "non_utf8_name":
        body, content_type = form_data([(rng.choice((b"\xff\xfe", b"\xc3\x28", b"ct\x00pet", b"\x80" * 300)), data)], mark)
    elif kind == "nested":
        inner_body, inner_type = multipart_related([data], boundary(rng))
        body, content_type = multipart_related([inner_body], mark, part_type=inner_type)
    elif kind == "wrong_type":
        body, content_type = multipart_related([data], mark, part_type=rng.choice((b"text/plain", b"application/zip", b"", b"application/dicom+json")))
    elif kind == "unclosed":
        body, content_type = multipart_related([data], mark)
        body = body[: -len(mark) - 6]
    elif kind == "lf_only":
        body, content_type = multipart_related([data], mark)
        body = body.replace(b"\r\n", b"\n")
    else:
        body = b"--%s\r\nContent-Type: application/dicom\r\nX-Pad: %s\r\n\r\n%s\r\n--%s--\r\n" % (mark.encode(), b"p" * (1 << 20), data, mark.encode())
        content_type = b'multipart/related; type="application/dicom"; boundary=' + mark.encode()
    return Request("POST", _target(rng), body, ((b"Content-Type", content_type),), f"parts {kind}")


@functools.lru_cache(maxsize=8)
def _zero_member(size: int, head: bytes = b"") -> tuple[bytes, int]:
    """A raw-deflate stream of ``head`` then zero bytes, ``size`` in all (whole MiB), and its
    CRC-32."""
    compressor, crc = zlib.compressobj(9, zlib.DEFLATED, -15), 0
    out = []
    for index in range(size >> 20):
        chunk = bytes(1 << 20) if index or not head else head + bytes((1 << 20) - len(head))
        out.append(compressor.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    out.append(compressor.flush())
    return b"".join(out), crc


def _dicom_bomb(size: int) -> tuple[bytes, int]:
    """A zero-filled member that begins like DICOM Part 10 (preamble, ``DICM``), so the
    gateway must inflate it to find out (a member that does not is skipped after 132 bytes)."""
    return _zero_member(size, bytes(128) + b"DICM")


def _zip_raw(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A ZIP archive of already-deflated members: (name, deflated, crc, uncompressed size)."""
    local, central, offset = [], [], 0
    for name, deflated, crc, size in members:
        encoded = name.encode()
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(deflated), size, len(encoded), 0) + encoded
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(deflated), size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
        local.append(header + deflated)
        offset += len(header) + len(deflated)
    directory = b"".join(central)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), offset, 0)
    return b"".join(local) + directory + end


@family
def zip_bombs(rng, corpus):
    """Zero-filled members that inflate past the budget (one member, many members, or several
    ZIP parts of one multipart body each under it and together over it), and archives of
    10,000 members."""
    kind = rng.choice(("one_member", "many_members", "parts_over_budget", "under_budget", "ten_thousand"))
    if kind == "one_member":
        size = UPLOAD_CAP_BYTES + (32 << 20)
        body = _zip_raw([("bomb.dcm", *_dicom_bomb(size), size)])
    elif kind == "many_members":
        size = 16 << 20
        body = _zip_raw([(f"m{i}.dcm", *_dicom_bomb(size), size) for i in range(UPLOAD_CAP_BYTES // size + 2)])
    elif kind == "under_budget":
        size = 8 << 20
        body = _zip_raw([("zeros.dcm", *_zero_member(size), size)])
    elif kind == "ten_thousand":
        body = zip_of([(f"{i}.dcm", b"x") for i in range(10000)], zipfile.ZIP_STORED)
    else:
        size = (UPLOAD_CAP_BYTES // 2) + (8 << 20)
        archive = _zip_raw([("part.dcm", *_dicom_bomb(size), size)])
        mark = boundary(rng)
        parts = b"".join(
            b'--%s\r\nContent-Disposition: form-data; name="file"; filename="p%d.zip"\r\nContent-Type: application/zip\r\n\r\n%s\r\n' % (mark.encode(), i, archive)
            for i in range(3)
        )
        return Request("POST", random_predict_target(rng), parts + b"--%s--\r\n" % mark.encode(), ((b"Content-Type", b"multipart/form-data; boundary=" + mark.encode()),), f"zip {kind}")
    return Request("POST", random_predict_target(rng), body, ((b"Content-Type", b"application/zip"),), f"zip {kind}")


@family
def zip_corruption(rng, corpus):
    """Real DICOM in ZIPs whose deflate stream, CRC, sizes or central directory are corrupt;
    a ZIP inside a ZIP; path traversal member names; an archive cut short."""
    data = corpus.bytes(rng.choice(("CT_small.dcm", "MR_small.dcm", "693_J2KI.dcm")))
    kind = rng.choice(("deflate", "crc", "sizes", "directory", "nested", "traversal", "truncated", "stored_lie"))
    deflated = zlib.compress(data, 6)[2:-4]
    crc = zlib.crc32(data)
    if kind == "deflate":
        broken = bytearray(deflated)
        for _ in range(rng.randint(1, 16)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        body = _zip_raw([("a.dcm", bytes(broken), crc, len(data))])
    elif kind == "crc":
        body = _zip_raw([("a.dcm", deflated, crc ^ 0xFFFF, len(data))])
    elif kind == "sizes":
        body = _zip_raw([("a.dcm", deflated, crc, rng.choice((0, 1, 0xFFFFFFFF, len(data) * 1000)))])
    elif kind == "directory":
        body = bytearray(_zip_raw([("a.dcm", deflated, crc, len(data))]))
        body[-22 + rng.randrange(22)] = rng.randrange(256)
        body = bytes(body)
    elif kind == "nested":
        body = zip_of([("inner.zip", zip_of([("a.dcm", data)]))])
    elif kind == "traversal":
        body = zip_of([(rng.choice(("../../etc/a.dcm", "/abs/a.dcm", "a\x00b.dcm", "é" * 200 + ".dcm")), data)])
    elif kind == "truncated":
        whole = zip_of([("a.dcm", data)])
        body = whole[: rng.randrange(len(whole))]
    else:
        body = _zip_raw([("a.dcm", data[:100], crc, len(data))])
    return Request("POST", random_predict_target(rng), body, ((b"Content-Type", rng.choice((b"application/zip", b"application/x-zip-compressed"))),), f"zip {kind}")
