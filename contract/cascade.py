"""A model that runs as the last stage of a cascade (the card's ``cascade`` parameter).

A cascade is one served model name whose stages are each a model of their own in Triton:
the ``localiser`` (e.g. a low-resolution network over the whole series) runs first; its label
map, post-processed by its own output spec, gives a region (:class:`postprocessing.region.RegionSpec`);
the source cropped to that region is prepared by this model's spec and segmented; the result is
pasted back onto the source grid. Both stages prepare from one loaded volume, so they must agree
on ``orientation`` and ``spacing_mm`` (export checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from postprocessing.region import RegionSpec
from preprocessing.errors import InvalidSpec

from .errors import MalformedCard

__all__ = ["CascadeSpec"]


@dataclass(frozen=True)
class CascadeSpec:
    """``localiser``: the Triton model name of the first stage; ``region``: how its labels
    become this model's crop."""

    localiser: str
    region: RegionSpec

    def to_document(self) -> dict[str, Any]:
        return {"localiser": self.localiser, "region": self.region.to_dict()}

    @classmethod
    def from_document(cls, doc: Any) -> "CascadeSpec":
        if not isinstance(doc, Mapping) or not isinstance(doc.get("localiser"), str) or not doc["localiser"]:
            raise MalformedCard("cascade: expected {\"localiser\": <model name>, \"region\": {...}}")
        try:
            return cls(doc["localiser"], RegionSpec.from_dict(doc.get("region") or {}))
        except InvalidSpec as exc:
            raise MalformedCard(f"cascade: {exc.message}") from exc
