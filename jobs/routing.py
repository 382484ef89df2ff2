"""Routing rules: which models run on a received series (``MEDSERVE_ROUTES``, a YAML file).

```yaml
routes:
  - name: chest-ct                       # for the record and the logs
    match:                               # every key given must match (all optional)
      modality: [CT]                     # (0008,0060), any of
      body_part: [CHEST, LUNG]           # (0018,0015) Body Part Examined, any of, case-insensitive
      series_description: "(?i)lung"     # (0008,103E), a regular expression searched in it
      calling_ae: [PACS]                 # who sent it, any of
      called_ae: [MEDSERVE]              # the AE title it was sent to, any of
    models: [ct_nodule_segmenter_3d]     # or "auto": every model whose input takes the series
    group_by: series                     # or study: wait for the whole study, one job per model
    send:                                # optional: where each job's DICOM outputs go
      - {destination: pacs, outputs: [seg, sr]}
destinations:                            # optional: named in send (jobs.delivery.destinations)
  pacs: {kind: dimse, ae_title: PACS, host: 10.0.0.5, port: 104}
```

Rules are tried in order and every matching rule contributes its models (a series may go to
several models); a series no rule matches is recorded as unrouted and cleaned up, not an error.
Without a file, every series goes to the models whose contract takes it (:func:`accepts`):
single-input models whose input modality is the series' and whose input shape the series can
fill (a 3D model needs more than one slice). The file is validated at start; every problem is
named with the rule's position and key, and a ``send`` naming a destination the file does not
define is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract import ModelCard, Task

from .delivery.destinations import Destination, Send

__all__ = ["AUTO", "RoutesError", "Route", "RoutingRules", "SeriesFacts", "accepts"]

#: ``models: auto``: every model whose input takes the series.
AUTO = "auto"


class RoutesError(ValueError):
    """The routes file cannot be used: the message names the file, the rule and the key."""


@dataclass(frozen=True)
class SeriesFacts:
    """What routing looks at in a received series (header values routing needs, never logged)."""

    modality: str
    body_part: str = ""
    series_description: str = ""
    calling_ae: str = ""
    called_ae: str = ""
    slices: int = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    modality: list[str] = Field(default_factory=list)
    body_part: list[str] = Field(default_factory=list)
    series_description: str | None = None
    calling_ae: list[str] = Field(default_factory=list)
    called_ae: list[str] = Field(default_factory=list)

    @field_validator("series_description")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    def matches(self, series: SeriesFacts) -> bool:
        def any_of(allowed: list[str], value: str) -> bool:
            return not allowed or value.strip().upper() in {a.strip().upper() for a in allowed}

        return (
            any_of(self.modality, series.modality)
            and any_of(self.body_part, series.body_part)
            and any_of(self.calling_ae, series.calling_ae)
            and any_of(self.called_ae, series.called_ae)
            and (self.series_description is None or re.search(self.series_description, series.series_description) is not None)
        )


class Route(_Strict):
    name: str = Field(min_length=1, max_length=64)
    match: Match = Match()
    models: list[str] | Literal["auto"] = Field(min_length=1)
    group_by: Literal["series", "study"] = "series"
    send: list[Send] = Field(default_factory=list)


class _File(_Strict):
    routes: list[Route] = Field(min_length=1)
    destinations: dict[str, Destination] = Field(default_factory=dict)


def accepts(card: ModelCard, series: SeriesFacts) -> bool:
    """Whether ``card``'s model takes ``series`` on its own: one input, of the series'
    modality (or of any modality when the input names none), and a shape the series fills."""
    if len(card.inputs) != 1 or card.task == Task.MULTI_INPUT:
        return False
    modality = card.inputs[0].modality or (card.preprocessing.modalities[0] if len(card.preprocessing.modalities) == 1 else None)
    allowed = card.preprocessing.modalities or ((modality,) if modality else ())
    if allowed and series.modality.strip().upper() not in allowed:
        return False
    return not (card.preprocessing.volumetric and series.slices < 2)


@dataclass(frozen=True)
class RoutingRules:
    """The rules of a routes file, or the default (``routes`` empty: every accepting model)."""

    routes: tuple[Route, ...] = ()
    source: str = "default"
    destinations: Mapping[str, Destination] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str | None) -> "RoutingRules":
        """The rules in ``path``; the default when ``path`` is None. :class:`RoutesError` names
        what is wrong."""
        if path is None:
            return cls()
        path = Path(path)
        try:
            document = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise RoutesError(f"{path}: routes file not found") from None
        except yaml.YAMLError as exc:
            raise RoutesError(f"{path}: not valid YAML: {exc}") from None
        try:
            parsed = _File.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(f"{_where(err['loc'])}: {str(err['msg']).removeprefix('Value error, ')}" for err in exc.errors())
            raise RoutesError(f"{path}: {problems}") from None
        names = [route.name for route in parsed.routes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise RoutesError(f"{path}: route names must be unique, repeated: {', '.join(repeated)}")
        undefined = [
            f"routes[{index}].send[{position}].destination: {send.destination!r} is not among destinations"
            for index, route in enumerate(parsed.routes)
            for position, send in enumerate(route.send)
            if send.destination not in parsed.destinations
        ]
        if undefined:
            raise RoutesError(f"{path}: {'; '.join(undefined)}")
        return cls(tuple(parsed.routes), str(path), dict(parsed.destinations))

    def unknown_models(self, known: Iterable[str]) -> list[str]:
        """Models the rules name that are not among ``known`` (to warn about at start)."""
        known = set(known)
        return sorted({m for r in self.routes if r.models != AUTO for m in r.models} - known)

    def route(self, series: SeriesFacts, cards: Sequence[ModelCard]) -> list[tuple[str, str]]:
        """(rule name, model) for every model the series goes to, in rule order, each model once;
        empty when no rule matches (the series is unrouted)."""
        chosen: dict[str, str] = {}
        if not self.routes:
            return [("default", card.name) for card in cards if accepts(card, series)]
        for rule in self.routes:
            if not rule.match.matches(series):
                continue
            names = [c.name for c in cards if accepts(c, series)] if rule.models == AUTO else rule.models
            for name in names:  # a named model not served now: its job fails model_not_found, recorded
                chosen.setdefault(name, rule.name)
        return [(rule, model) for model, rule in chosen.items()]

    def sends(self, series: SeriesFacts, model: str, cards: Sequence[ModelCard]) -> list[Send]:
        """Where the outputs of ``model``'s job on ``series`` go: the ``send`` of every matching
        rule that chose the model (the default rules send nothing)."""
        found: list[Send] = []
        for rule in self.routes:
            if rule.send and rule.match.matches(series):
                names = [c.name for c in cards if accepts(c, series)] if rule.models == AUTO else rule.models
                if model in names:
                    found.extend(rule.send)
        return found

    def group_by(self, series: SeriesFacts) -> str:
        """``study`` when the first matching rule groups by study, else ``series``."""
        return next((r.group_by for r in self.routes if r.match.matches(series)), "series")


def _where(loc: tuple) -> str:
    """pydantic's error location as the file's path: ``routes[1].match.series_description``."""
    return "".join(f"[{item}]" if isinstance(item, int) else f".{item}" for item in loc).lstrip(".") or "routes"
