"""Coded concepts for an output's class labels: what a DICOM SEG segment or an SR finding says
each label *is*, in codes a PACS and a reporting system understand.

An output may carry ``codes``: label → ``{"category": code, "type": code, "site": code}``
(``site`` optional), each code ``[coding scheme designator, code value, code meaning]`` as
DICOM writes a code sequence item (PS3.3 8.8), e.g.::

    "codes": {"nodule": {"category": ["SCT", "49755003", "Morphologically abnormal structure"],
                         "type": ["SCT", "27925004", "Nodule"],
                         "site": ["SCT", "39607008", "Lung"]}}

``category`` / ``type`` are a SEG's Segmented Property Category / Type and an SR finding's
category and Finding (121071); ``site`` is the SR's Finding Site. Labels without codes are coded
by the gateway's built-in table (``gateway.outputs.label_codes``). Added in contract 1.2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import MalformedCard

__all__ = ["Code", "LabelCodes", "codes_from_document", "codes_to_document"]

#: DICOM's limits on a code item: (0008,0102) SH, (0008,0100) SH (longer values go to
#: (0008,0119) UC, which medserve does not write), (0008,0104) LO.
_MAX_SCHEME, _MAX_VALUE, _MAX_MEANING = 16, 16, 64


@dataclass(frozen=True)
class Code:
    """One coded concept: ``scheme`` (coding scheme designator, e.g. ``SCT``), ``value``, ``meaning``."""

    scheme: str
    value: str
    meaning: str

    @classmethod
    def from_document(cls, doc: Any, what: str) -> "Code":
        if not (isinstance(doc, list) and len(doc) == 3 and all(isinstance(part, str) and part.strip() for part in doc)):
            raise MalformedCard(f"{what}: expected [scheme designator, code value, code meaning], three non-empty strings")
        scheme, value, meaning = (part.strip() for part in doc)
        for part, limit, name in ((scheme, _MAX_SCHEME, "scheme designator"), (value, _MAX_VALUE, "code value"), (meaning, _MAX_MEANING, "code meaning")):
            if len(part) > limit:
                raise MalformedCard(f"{what}: the {name} has {len(part)} characters, at most {limit} are allowed")
        return cls(scheme, value, meaning)

    def to_document(self) -> list[str]:
        return [self.scheme, self.value, self.meaning]


@dataclass(frozen=True)
class LabelCodes:
    """What one label is: its property ``category`` and ``type``, and optionally its anatomic ``site``."""

    category: Code
    type: Code
    site: Code | None = None

    @classmethod
    def from_document(cls, doc: Any, what: str) -> "LabelCodes":
        if not isinstance(doc, Mapping):
            raise MalformedCard(f"{what}: expected a JSON object with category, type and optionally site")
        unknown = set(doc) - {"category", "type", "site"}
        if unknown:
            raise MalformedCard(f"{what}: unknown keys {', '.join(sorted(map(str, unknown)))}; expected category, type, site")
        for key in ("category", "type"):
            if key not in doc:
                raise MalformedCard(f"{what}: {key} missing")
        site = Code.from_document(doc["site"], f"{what}.site") if doc.get("site") is not None else None
        return cls(Code.from_document(doc["category"], f"{what}.category"), Code.from_document(doc["type"], f"{what}.type"), site)

    def to_document(self) -> dict[str, list[str]]:
        document = {"category": self.category.to_document(), "type": self.type.to_document()}
        if self.site is not None:
            document["site"] = self.site.to_document()
        return document


def codes_from_document(doc: Any, labels: list[str], what: str = "codes") -> dict[str, LabelCodes]:
    """An output's ``codes`` document, checked: a JSON object whose every key is one of ``labels``."""
    if not isinstance(doc, Mapping):
        raise MalformedCard(f"{what}: expected a JSON object label → codes")
    strangers = [str(key) for key in doc if key not in labels]
    if strangers:
        raise MalformedCard(f"{what}: {', '.join(repr(s[:64]) for s in strangers)} not among the output's labels")
    return {key: LabelCodes.from_document(value, f"{what}.{key}") for key, value in doc.items()}


def codes_to_document(codes: Mapping[str, LabelCodes]) -> dict[str, dict[str, list[str]]]:
    return {label: item.to_document() for label, item in codes.items()}
