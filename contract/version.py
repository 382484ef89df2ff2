"""The contract's version: ``major.minor``.

A minor version only adds (a key, an optional field): every reader of a major reads every
minor of it and ignores what it does not know. Anything else (a key renamed, removed or
given another meaning) is a new major, which older readers refuse instead of guessing.
Configs written before the version had a minor say ``"1"``, read as 1.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import MalformedCard, UnsupportedContract

__all__ = ["CONTRACT_VERSION", "CONTRACT_VERSION_CHANGED_ANSWER", "KNOWN_MAJORS", "ContractVersion"]

#: What ``medserve export`` writes today. 1.1 added the optional ``input_quality`` gate (a
#: 1.0 reader that ignores it only checks less); 1.2 an output's optional label ``codes`` (a
#: 1.1 reader that ignores them codes SEG segments and SR findings by its own table); 1.3 the
#: optional ``export_report`` document (a 1.2 reader that ignores it only cannot show it).
CONTRACT_VERSION = "1.3"
#: What it writes for a card a 1.x reader must not serve: one with a ``cascade`` (served alone,
#: its last stage would run on the whole series) or an output ``postprocessing`` (ignored, the
#: answer would be a plain argmax). A new major, so that older gateways refuse the model
#: instead of answering something else than was exported and verified.
CONTRACT_VERSION_CHANGED_ANSWER = "2.0"

#: The majors this code reads (every minor of each).
KNOWN_MAJORS: frozenset[int] = frozenset({1, 2})

_VERSION = re.compile(r"^(\d{1,4})(?:\.(\d{1,4}))?$")


@dataclass(frozen=True, order=True)
class ContractVersion:
    major: int
    minor: int = 0

    @classmethod
    def parse(cls, text: str, model: str = "?") -> "ContractVersion":
        """``"1.0"`` or ``"1"`` (read as 1.0); anything else is :class:`MalformedCard`."""
        match = _VERSION.match(text.strip())
        if match is None:
            raise MalformedCard(f"model {model!r} has malformed medserve parameters: medserve_contract must be 'major.minor', got {text[:32]!r}")
        return cls(int(match[1]), int(match[2] or 0))

    def require_known(self, model: str = "?") -> "ContractVersion":
        """This version, or :class:`UnsupportedContract` when its major is not known here."""
        if self.major not in KNOWN_MAJORS:
            readable = ", ".join(f"{major}.x" for major in sorted(KNOWN_MAJORS))
            raise UnsupportedContract(
                f"model {model!r} was exported under medserve contract {self}, this gateway reads contract {readable}: "
                "export it with a medserve of this gateway's version, or upgrade the gateway"
            )
        return self

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

