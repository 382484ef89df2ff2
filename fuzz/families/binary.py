"""Mutations of the bytes of a Part 10 stream, at random and at structural points."""

from __future__ import annotations

import random

from .. import part10
from ..envelopes import dicom_request
from . import family


def _seed(rng: random.Random, corpus) -> tuple[str, bytes]:
    name = rng.choice(corpus.all_images + corpus.broken)
    return name, corpus.bytes(name)


@family
def byte_flips(rng, corpus):
    """1-64 bytes replaced by random ones, anywhere or only in the header (before (7FE0,0010))."""
    name, data = _seed(rng, corpus)
    buffer = bytearray(data)
    pixel = next((e.offset for e in part10.elements(data) if e.tag == (0x7FE0, 0x0010)), len(data))
    limit = pixel if rng.random() < 0.6 else len(data)
    for _ in range(rng.randint(1, 64)):
        buffer[rng.randrange(min(limit, len(buffer)))] = rng.randrange(256)
    return dicom_request(rng, [bytes(buffer)], f"{name} flipped")


@family
def truncation(rng, corpus):
    """The stream cut at a random byte, just before/after/inside an element, or in the preamble."""
    name, data = _seed(rng, corpus)
    walked = part10.elements(data)
    point = rng.choice(("random", "element", "preamble")) if walked else "random"
    if point == "element":
        element = rng.choice(walked)
        cut = rng.choice((element.offset, element.offset + 2, element.value_offset, element.end - 1, element.end))
    elif point == "preamble":
        cut = rng.randrange(0, 140)
    else:
        cut = rng.randrange(len(data))
    return dicom_request(rng, [data[:cut]], f"{name} cut at {cut} ({point})")


@family
def extension(rng, corpus):
    """Bytes appended: random, zeros, a copy of the stream, or a dangling element header."""
    name, data = _seed(rng, corpus)
    kind = rng.choice(("random", "zeros", "copy", "dangling"))
    tail = {
        "random": lambda: rng.randbytes(rng.randint(1, 4096)),
        "zeros": lambda: bytes(rng.choice((1, 7, 4096, 1 << 20))),
        "copy": lambda: data,
        "dangling": lambda: part10.explicit_header((0x7FE1, 0x0010), b"OB", 0x7FFFFFF0),
    }[kind]()
    return dicom_request(rng, [data + tail], f"{name} + {kind} tail")


@family
def lying_lengths(rng, corpus):
    """One element's declared length rewritten: huge, odd, off by one, zero, or undefined."""
    name = rng.choice(corpus.all_images)
    data = corpus.bytes(name)
    walked = part10.elements(data)
    if not walked:
        return dicom_request(rng, [data], f"{name} (not walkable)")
    pixel = [e for e in walked if e.tag == (0x7FE0, 0x0010)]
    element = pixel[0] if pixel and rng.random() < 0.3 else rng.choice(walked)
    cap = 0xFFFF if element.length_size == 2 else 0xFFFFFFFF
    length = rng.choice((cap - 1, cap, 0x7FFFFFFF, element.length + 1, element.length - 1, 0, 1, 3, 0xFFFFFFF0))
    mutated = part10.with_length(data, element, max(0, length))
    return dicom_request(rng, [mutated], f"{name} {element.tag[0]:04X},{element.tag[1]:04X} length {length:#x}")


@family
def element_splices(rng, corpus):
    """Top-level elements duplicated, removed or swapped (tag order broken), bytes left valid."""
    name = rng.choice(corpus.all_images)
    data = corpus.bytes(name)
    walked = [e for e in part10.elements(data) if e.tag[0] != 0x0002]
    if len(walked) < 2:
        return dicom_request(rng, [data], f"{name} (not walkable)")
    a, b = sorted(rng.sample(walked, 2), key=lambda e: e.offset)
    kind = rng.choice(("duplicate", "remove", "swap"))
    if kind == "duplicate":
        mutated = part10.insert(data, a.end, data[a.offset : a.end])
    elif kind == "remove":
        mutated = data[: a.offset] + data[a.end :]
    else:
        mutated = data[: a.offset] + data[b.offset : b.end] + data[a.end : b.offset] + data[a.offset : a.end] + data[b.end :]
    return dicom_request(rng, [mutated], f"{name} {kind} {a.tag[0]:04X},{a.tag[1]:04X}")
