"""From a complete series to jobs: the routing rules decide which models run on it.

The receiver closes series (:mod:`jobs.received`, state ``complete``); the router — running in
the gateway, where the served models' cards are known — takes each complete series, asks the
rules (:mod:`jobs.routing`), submits one job per chosen model on the series' spool folder, and
marks the series ``routed``; a series no rule matches is marked ``unrouted`` and its files are
removed. Jobs are submitted under the idempotency key ``dimse:<series>:<model>``, so a router
that dies between submitting and marking, or two routers taking the same series, make each job
once. Everything it needs is in the store: a restarted gateway routes what was left complete.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contract import ModelCard

from .received import COMPLETE, ROUTED, UNROUTED, ReceivedStore, SeriesRecord
from .routing import RoutingRules, SeriesFacts
from .store import JobStore

__all__ = ["RoutingOutcome", "SeriesRouter"]

log = logging.getLogger("medserve.router")


@dataclass
class RoutingOutcome:
    """What one pass did: jobs submitted (new ones), series routed and unrouted."""

    jobs: list[str] = field(default_factory=list)
    routed: int = 0
    unrouted: int = 0


class SeriesRouter:
    """Routes the complete series of ``received`` into ``jobs`` by ``rules``."""

    def __init__(self, received: ReceivedStore, jobs: JobStore, rules: RoutingRules, *, output_format: str = "json", max_attempts: int = 3) -> None:
        self.received, self.jobs, self.rules = received, jobs, rules
        self.output_format, self.max_attempts = output_format, max_attempts

    def route_complete(self, cards: Sequence[ModelCard], limit: int = 100) -> RoutingOutcome:
        """One pass over the complete series (at most ``limit``), with the models served now."""
        outcome = RoutingOutcome()
        for record in self.received.in_state(COMPLETE, limit):
            self._route(record, cards, outcome)
        return outcome

    def _route(self, record: SeriesRecord, cards: Sequence[ModelCard], outcome: RoutingOutcome) -> None:
        facts = SeriesFacts(
            modality=record.modality or "", body_part=record.body_part or "", series_description=record.series_description or "",
            calling_ae=record.calling_ae, called_ae=record.called_ae, slices=record.instances,
        )
        chosen = self.rules.route(facts, cards)
        files = self.received.instances_of(record.series_uid)
        if not chosen or not files:
            if self.received.mark(record.series_uid, UNROUTED, expected=COMPLETE):
                outcome.unrouted += 1
                for folder in {path.parent for path in files}:
                    shutil.rmtree(folder, ignore_errors=True)
                log.info("series unrouted", extra={"rules": self.rules.source, "instances": record.instances, "modality": facts.modality})
            return
        folder = _one_folder(files)
        for rule, model in chosen:
            job, created = self.jobs.submit(
                model, "dimse", str(folder), idempotency_key=f"dimse:{record.series_uid}:{model}",
                study_uid=record.study_uid, series_uid=record.series_uid, output_format=self.output_format,
                max_attempts=self.max_attempts,
            )
            if created:
                outcome.jobs.append(job.id)
                log.info("series routed", extra={"rule": rule, "model": model, "job": job.id, "instances": record.instances})
        if self.received.mark(record.series_uid, ROUTED, expected=COMPLETE):
            outcome.routed += 1


def _one_folder(files: list[Path]) -> Path:
    """The spool folder of a series (the receiver writes every instance of a series into one)."""
    folders = {path.parent for path in files}
    if len(folders) != 1:
        raise ValueError(f"a series' instances are spread over {len(folders)} spool folders")
    return folders.pop()
