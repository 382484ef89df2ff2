"""Byte-level view of a DICOM Part 10 stream, for mutations a toolkit refuses to write:
declared lengths that lie, cuts at element boundaries, sequences spliced in by hand.

Only little-endian data sets are walked (explicit or implicit VR, PS3.5 §7.1); the file meta
group (0002,xxxx) is always explicit VR little endian (PS3.10 §7.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PREAMBLE = 132  # 128-byte preamble + "DICM"
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)
#: VRs whose explicit encoding has 2 reserved bytes and a 4-byte length (PS3.5 Table 7.1-1).
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
IMPLICIT_LE, EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
BIG_ENDIAN = "1.2.840.10008.1.2.2"


@dataclass(frozen=True)
class Element:
    """One element of the stream: where it starts, where its length field and value lie."""

    offset: int
    tag: tuple[int, int]
    vr: bytes | None  # None in implicit VR
    length_offset: int
    length_size: int  # 2 or 4 bytes
    value_offset: int
    length: int
    end: int


class _Walker:
    def __init__(self, data: bytes, explicit: bool) -> None:
        self.data, self.explicit = data, explicit

    def element(self, pos: int, explicit: bool | None = None) -> Element:
        data = self.data
        explicit = self.explicit if explicit is None else explicit
        group, number = struct.unpack_from("<HH", data, pos)
        if (group, number) in (ITEM, ITEM_END, SEQUENCE_END) or not explicit:
            (length,) = struct.unpack_from("<I", data, pos + 4)
            element = Element(pos, (group, number), None, pos + 4, 4, pos + 8, length, 0)
        else:
            vr = bytes(data[pos + 4 : pos + 6])
            if vr in LONG_VRS:
                (length,) = struct.unpack_from("<I", data, pos + 8)
                element = Element(pos, (group, number), vr, pos + 8, 4, pos + 12, length, 0)
            else:
                (length,) = struct.unpack_from("<H", data, pos + 6)
                element = Element(pos, (group, number), vr, pos + 6, 2, pos + 8, length, 0)
        end = self.skip_undefined(element.value_offset) if length == UNDEFINED else element.value_offset + length
        if end > len(data):
            raise ValueError("element runs past the end")
        return Element(*[getattr(element, f) for f in ("offset", "tag", "vr", "length_offset", "length_size", "value_offset", "length")], end)

    def skip_undefined(self, pos: int) -> int:
        """End of an undefined-length value: items up to the Sequence Delimitation Item."""
        while pos + 8 <= len(self.data):
            tag = struct.unpack_from("<HH", self.data, pos)
            (length,) = struct.unpack_from("<I", self.data, pos + 4)
            if tag == SEQUENCE_END:
                return pos + 8
            if tag != ITEM:
                raise ValueError("no item where one belongs")
            if length != UNDEFINED:
                pos += 8 + length
                continue
            pos += 8
            while struct.unpack_from("<HH", self.data, pos) != ITEM_END:
                pos = self.element(pos).end
            pos += 8
        raise ValueError("unterminated sequence")


def transfer_syntax(data: bytes) -> str | None:
    """(0002,0010) Transfer Syntax UID, read from the explicit-VR file meta group."""
    walker, pos = _Walker(data, True), PREAMBLE
    try:
        while pos + 8 <= len(data) and struct.unpack_from("<H", data, pos)[0] == 0x0002:
            element = walker.element(pos)
            if element.tag == (0x0002, 0x0010):
                return data[element.value_offset : element.end].rstrip(b"\0 ").decode("ascii", "replace")
            pos = element.end
    except (ValueError, struct.error):
        return None
    return None


def elements(data: bytes) -> list[Element]:
    """The top-level elements of a little-endian Part 10 stream (file meta included), as far
    as they can be walked; [] for big endian or a stream without the DICM prefix."""
    syntax = transfer_syntax(data)
    if data[128:132] != b"DICM" or syntax is None or syntax == BIG_ENDIAN:
        return []
    walker = _Walker(data, explicit=syntax != IMPLICIT_LE)
    found, pos = [], PREAMBLE
    try:
        while pos + 8 <= len(data):
            meta = struct.unpack_from("<H", data, pos)[0] == 0x0002
            element = walker.element(pos, explicit=True if meta else None)
            found.append(element)
            pos = element.end
    except (ValueError, struct.error):
        pass
    return found


def with_length(data: bytes, element: Element, length: int) -> bytes:
    """``data`` with the declared length of ``element`` rewritten (the value left as is)."""
    size = element.length_size
    packed = struct.pack("<H" if size == 2 else "<I", length & (0xFFFF if size == 2 else 0xFFFFFFFF))
    return data[: element.length_offset] + packed + data[element.length_offset + size :]


def insert(data: bytes, offset: int, chunk: bytes) -> bytes:
    return data[:offset] + chunk + data[offset:]


def explicit_header(tag: tuple[int, int], vr: bytes, length: int) -> bytes:
    if vr in LONG_VRS:
        return struct.pack("<HH2s2xI", tag[0], tag[1], vr, length)
    return struct.pack("<HH2sH", tag[0], tag[1], vr, length)


def nested_sequences(depth: int, tag: tuple[int, int] = (0x0008, 0x1115), terminated: bool = True) -> bytes:
    """``depth`` undefined-length sequences, each in the one item of the one above
    ((0008,1115) Referenced Series Sequence by default), terminated or not."""
    opening = explicit_header(tag, b"SQ", UNDEFINED) + struct.pack("<HHI", *ITEM, UNDEFINED)
    closing = struct.pack("<HHI", *ITEM_END, 0) + struct.pack("<HHI", *SEQUENCE_END, 0)
    return opening * depth + (closing * depth if terminated else b"")


def with_transfer_syntax(data: bytes, uid: bytes) -> bytes:
    """``data`` with (0002,0010) Transfer Syntax UID replaced by ``uid`` (padded to even
    length) and (0002,0000) File Meta Information Group Length corrected; the data set is
    left encoded as it was, so the new UID may lie about it."""
    meta = [e for e in elements(data)[:16] if e.tag[0] == 0x0002] or _meta_only(data)
    syntax = next((e for e in meta if e.tag == (0x0002, 0x0010)), None)
    if syntax is None:
        return data
    value = uid + b"\0" * (len(uid) % 2)
    out = data[: syntax.offset] + explicit_header(syntax.tag, b"UI", len(value)) + value + data[syntax.end :]
    group = next((e for e in meta if e.tag == (0x0002, 0x0000)), None)
    if group is not None:
        (old,) = struct.unpack_from("<I", data, group.value_offset)
        delta = len(value) - (syntax.end - syntax.value_offset)
        out = out[: group.value_offset] + struct.pack("<I", max(0, old + delta)) + out[group.value_offset + 4 :]
    return out


def _meta_only(data: bytes) -> list[Element]:
    walker, pos, found = _Walker(data, True), PREAMBLE, []
    try:
        while pos + 8 <= len(data) and struct.unpack_from("<H", data, pos)[0] == 0x0002:
            found.append(walker.element(pos))
            pos = found[-1].end
    except (ValueError, struct.error):
        pass
    return found
