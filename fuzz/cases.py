"""A fuzz case: one HTTP request, generated lazily and reproducibly.

Every case is named ``family:seed:index``; its random stream is ``random.Random`` seeded with
that string (Python hashes a ``str`` seed with SHA-512, the same on every run and platform),
so a failing case is rebuilt from its id alone: ``python -m fuzz --case family:seed:index``.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    """An HTTP/1.1 request as bytes go on the wire. ``headers`` are raw (name, value) pairs;
    Host, Content-Length and Connection are added by the runner unless given here."""

    method: str
    target: str
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    note: str = ""

    def summary(self) -> str:
        content_type = next((v for k, v in self.headers if k.lower() == b"content-type"), b"")
        shown = content_type[:60].decode("latin-1")
        return f"{self.method} {self.target[:120]} [{shown}] {len(self.body)} B{' - ' + self.note if self.note else ''}"


@dataclass(frozen=True)
class Case:
    family: str
    seed: int
    index: int
    request: Request = field(compare=False)

    @property
    def id(self) -> str:
        return f"{self.family}:{self.seed}:{self.index}"


def generate(family: str, seed: int, index: int) -> Case:
    """The case ``family:seed:index``."""
    from .corpus import corpus
    from .families import FAMILIES

    rng = random.Random(f"{family}:{seed}:{index}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values we write on purpose
        return Case(family, seed, index, FAMILIES[family](rng, corpus()))


def case_from_id(case_id: str) -> Case:
    family, seed, index = case_id.rsplit(":", 2)
    return generate(family, int(seed), int(index))


def campaign(cases: int, seed: int = 0, families: list[str] | None = None) -> Iterator[Case]:
    """``cases`` cases, the families taken in turn (case i is family i mod F, index i div F)."""
    from .families import FAMILIES

    names = families or sorted(FAMILIES)
    for i in range(cases):
        yield generate(names[i % len(names)], seed, i // len(names))
