"""What the gateway knows about each model: the :class:`contract.ModelCard` in Triton's
model config, and whether this gateway can serve it.

Cards (and the reason a model cannot be served) are cached for ``model_cache_ttl_s`` so
that models added to or removed from Triton's repository show up without restarting the
gateway. A model whose card cannot be read (not written by ``medserve export``, malformed,
or under a contract major this gateway does not know) is listed as not servable with the
reason, makes ``/readyz`` not ready, and answers 500 ``model_misconfigured``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from contract import ContractError, ModelCard

from .drift import DRIFT_PUBLISHER, DriftMonitor, monitor_from_reference
from .errors import ModelMisconfigured, ModelNotFound, ModelNotReady
from .triton import TritonClient

__all__ = ["ModelCard", "ModelCatalog", "ModelEntry", "parse_model_card"]


def parse_model_card(config: dict[str, Any]) -> ModelCard:
    """A card from a Triton model config (JSON form); raises :class:`ModelMisconfigured`
    with the contract's reason when this gateway cannot use it."""
    try:
        return ModelCard.from_triton_config(config)
    except ContractError as exc:
        raise ModelMisconfigured(str(exc)) from exc


@dataclass(frozen=True)
class ModelEntry:
    """One model of Triton's repository index; ``servable`` is False, with the ``reason``,
    when the model is loaded but its card cannot be used by this gateway."""

    name: str
    version: str
    state: str
    servable: bool = True
    reason: str | None = None

    @property
    def ready(self) -> bool:
        return self.state == "READY" and self.servable


class ModelCatalog:
    """Model cards by name, fetched from Triton and cached for ``ttl_s`` seconds."""

    def __init__(self, triton: TritonClient, ttl_s: float, drift_window_size: int = 200, drift_min_samples: int = 20) -> None:
        self.triton = triton
        self.ttl_s = ttl_s
        self.drift_window_size = drift_window_size
        self.drift_min_samples = drift_min_samples
        self._cards: dict[str, tuple[float, ModelCard | str]] = {}  # a card, or why it cannot be used
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

    async def entries(self) -> list[ModelEntry]:
        """Every model in Triton's repository index; each loaded one with whether this
        gateway can serve it (its card read, or the reason it cannot be)."""
        index = await self.names()

        async def entry(model: dict[str, str]) -> ModelEntry:
            if model["state"] != "READY":
                return ModelEntry(**model)
            try:
                await self._card(model["name"])
            except ModelMisconfigured as exc:
                return ModelEntry(**model, servable=False, reason=exc.message)
            except (ModelNotFound, ModelNotReady):  # unloaded since the index was read: its state says enough
                pass
            return ModelEntry(**model)

        return list(await asyncio.gather(*(entry(model) for model in index)))

    async def card(self, name: str) -> ModelCard:
        """``name``'s card; :class:`ModelNotFound` when Triton has no such model,
        :class:`ModelMisconfigured` when its card cannot be used."""
        cached = self._cards.get(name)
        if cached is None or time.monotonic() - cached[0] >= self.ttl_s:
            known = {m["name"] for m in await self.names()}
            if name not in known:
                self._cards.pop(name, None)
                raise ModelNotFound(f"no model named {name!r}; GET /v1/models lists the available ones")
        return await self._card(name)

    async def _card(self, name: str) -> ModelCard:
        """The card from the cache, else from Triton's config (a refusal is cached too)."""
        cached = self._cards.get(name)
        if cached is None or time.monotonic() - cached[0] >= self.ttl_s:
            try:
                found: ModelCard | str = parse_model_card(await self.triton.model_config(name))
            except ModelMisconfigured as exc:
                found = exc.message
            cached = (time.monotonic(), found)
            self._cards[name] = cached
        if isinstance(cached[1], str):
            raise ModelMisconfigured(cached[1])
        return cached[1]
