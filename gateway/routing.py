"""The gateway's side of the DICOM node: series the receiver completed become jobs.

A loop in the gateway's lifespan runs :class:`jobs.router.SeriesRouter` every
``MEDSERVE_ROUTING_POLL_S`` with the cards of the models served now: the base models that are
ready and servable — not their lower-precision variants, nor the localisers of cascades, which
are reached through the model they serve. The rules are ``MEDSERVE_ROUTES`` (validated when the
app is created: a broken file stops the start with its problems named).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio

from contract import ModelCard
from jobs.received import ReceivedStore
from jobs.router import SeriesRouter
from jobs.routing import RoutingRules
from jobs.store import JobStore

from .catalog import ModelCatalog
from .errors import GatewayError

__all__ = ["load_rules", "route_forever", "routable_cards"]

log = logging.getLogger("medserve.router")


def load_rules(path: str | None) -> RoutingRules:
    """The routing rules of ``MEDSERVE_ROUTES`` (the default without one); raises
    :class:`jobs.routing.RoutesError` naming what is wrong."""
    return RoutingRules.load(path)


async def routable_cards(catalog: ModelCatalog) -> list[ModelCard]:
    """The cards routing chooses among: ready, servable base models, without the cascades' localisers."""
    cards = []
    for entry in await catalog.entries():
        if not entry.ready:
            continue
        try:
            cards.append(await catalog.card(entry.name))
        except GatewayError:  # unloaded or unreadable since the index was read: not routable now
            continue
    localisers = {card.cascade.localiser for card in cards if card.cascade is not None}
    return [card for card in cards if card.variant_of in (None, card.name) and card.name not in localisers]


async def route_forever(
    catalog: ModelCatalog, store: JobStore, rules: RoutingRules, poll_s: float, study_silence_s: float, output_format: str = "json",
    on_jobs: Callable[[], None] = lambda: None,
) -> None:
    """Route complete series until cancelled; a pass that fails is logged by type and retried.
    ``on_jobs`` hears of each pass that made jobs (the gateway wakes its job workers)."""
    router = SeriesRouter(ReceivedStore(store.engine), store, rules, output_format=output_format, study_silence_s=study_silence_s)
    while True:
        try:
            if not await anyio.to_thread.run_sync(router.has_complete):  # idle: no index or config calls to Triton
                await asyncio.sleep(poll_s)
                continue
            cards = await routable_cards(catalog)
            outcome = await anyio.to_thread.run_sync(router.route_complete, cards)
            if outcome.jobs:
                on_jobs()
            if outcome.jobs or outcome.unrouted:
                log.info("routing pass", extra={"jobs": len(outcome.jobs), "routed": outcome.routed, "unrouted": outcome.unrouted})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop outlives a pass (Triton down, database busy)
            log.warning("routing pass failed", extra={"error_type": type(exc).__name__})
        await asyncio.sleep(poll_s)
