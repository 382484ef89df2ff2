"""What the gateway knows about each model, read from Triton's model config ``parameters``.

Export writes each parameter value as a JSON document; this module parses them into a typed
:class:`ModelCard`. Cards are cached for ``model_cache_ttl_s`` so that models added to or
removed from Triton's repository show up without restarting the gateway.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from preprocessing import InvalidSpec, PreprocessingSpec

from .drift import DRIFT_PUBLISHER, DriftMonitor, monitor_from_reference
from .errors import ModelMisconfigured, ModelNotFound
from .triton import TritonClient


@dataclass(frozen=True)
class TensorInfo:
    """One model input; multi-input models say which ``modality`` feeds it and how it is
    prepared (``preprocessing``; None means the model's top-level spec)."""

    name: str
    dtype: str
    shape: list[int]
    modality: str | None = None
    preprocessing: PreprocessingSpec | None = None


@dataclass(frozen=True)
class OutputInfo:
    name: str
    meaning: str
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelCard:
    name: str
    task: str
    description: str
    inputs: list[TensorInfo]
    outputs: list[OutputInfo]
    preprocessing: PreprocessingSpec
    max_batch_size: int
    export_report_digest: str
    drift_reference: dict[str, Any] | None = None

    @property
    def labels(self) -> list[str]:
        return next((o.labels for o in self.outputs if o.labels), [])


def parse_model_card(config: dict[str, Any]) -> ModelCard:
    """A card from a Triton model config (JSON form); raises :class:`ModelMisconfigured`
    when the config was not written by ``medserve export``."""
    name = config.get("name", "?")
    raw = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
    if "medserve_contract" not in raw:
        raise ModelMisconfigured(f"model {name!r} has no medserve parameters in its Triton config; export it with `medserve export`")
    try:
        params = {key: json.loads(value) if value[:1] in "[{\"" else value for key, value in raw.items()}
        return ModelCard(
            name=name,
            task=params["task"],
            description=params.get("description", ""),
            inputs=[
                TensorInfo(
                    t["name"],
                    t["dtype"],
                    t["shape"],
                    (t.get("modality") or "").upper() or None,
                    PreprocessingSpec.from_dict(t["preprocessing"]) if t.get("preprocessing") else None,
                )
                for t in params["inputs"]
            ],
            outputs=[OutputInfo(o["name"], o["meaning"], o.get("labels", [])) for o in params["outputs"]],
            preprocessing=PreprocessingSpec.from_dict(params["preprocessing"]),
            max_batch_size=int(config.get("max_batch_size", 0)),
            export_report_digest=params.get("export_report_digest", ""),
            drift_reference=params.get("drift_reference") or None,
        )
    except (KeyError, TypeError, ValueError, InvalidSpec) as exc:
        raise ModelMisconfigured(f"model {name!r} has malformed medserve parameters: {exc}") from exc


class ModelCatalog:
    """Model cards by name, fetched from Triton and cached for ``ttl_s`` seconds."""

    def __init__(self, triton: TritonClient, ttl_s: float, drift_window_size: int = 200, drift_min_samples: int = 20) -> None:
        self.triton = triton
        self.ttl_s = ttl_s
        self.drift_window_size = drift_window_size
        self.drift_min_samples = drift_min_samples
        self._cards: dict[str, tuple[float, ModelCard]] = {}
        self._monitors: dict[str, tuple[str, DriftMonitor]] = {}

    def monitor(self, card: ModelCard) -> DriftMonitor | None:
        """The drift monitor of ``card``'s model, rebuilt when the model is re-exported."""
        if not card.drift_reference:
            return None
        current = self._monitors.get(card.name)
        if current is None or current[0] != card.export_report_digest:
            try:
                monitor = monitor_from_reference(card.name, card.drift_reference, self.drift_window_size, self.drift_min_samples)
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelMisconfigured(f"model {card.name!r} has a malformed drift_reference: {exc}") from exc
            current = (card.export_report_digest, DRIFT_PUBLISHER.track(monitor))
            self._monitors[card.name] = current
        return current[1]

    async def names(self) -> list[dict[str, str]]:
        """Every model in Triton's repository index with its version and state."""
        return [
            {"name": m.get("name", ""), "version": m.get("version", ""), "state": m.get("state", "UNKNOWN")}
            for m in await self.triton.repository_index()
        ]

    async def card(self, name: str) -> ModelCard:
        cached = self._cards.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        known = {m["name"] for m in await self.names()}
        if name not in known:
            self._cards.pop(name, None)
            raise ModelNotFound(f"no model named {name!r}; GET /v1/models lists the available ones")
        card = parse_model_card(await self.triton.model_config(name))
        self._cards[name] = (time.monotonic(), card)
        return card
