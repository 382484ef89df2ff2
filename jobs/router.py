"""From complete series to jobs: the routing rules decide which models run on them.

The receiver closes series (:mod:`jobs.received`, state ``complete``); the router — running in
the gateway, where the served models' cards are known — takes each complete series, asks the
rules (:mod:`jobs.routing`) and submits jobs on the spool:

* **by series** (the default): one job per chosen model on the series' spool folder, under the
  idempotency key ``dimse:<series>:<model>``; the series is marked ``routed``. A series no
  rule matches is marked ``unrouted`` and its files are removed.
* **by study**, when the first rule matching some series of a study says ``group_by: study``:
  the study waits until none of its series is still ``receiving`` and its last series completed
  at least ``study_silence_s`` seconds ago (a modality sends the next series within that time),
  then one job per model those series chose runs on the study's spool folder (every series
  of it: a CT + PET fusion model takes both), under ``dimse-study:<study>:<model>``. Series of
  the study that group by series keep their own per-series jobs; every complete series of the
  study is marked ``routed`` (one no rule matches is input of the study's job, so its files stay).
  While some rule groups by study, a series no rule takes waits the study silence before it is
  unrouted: its study's next series may still come (a PET series sent before its CT).

A router that dies between submitting and marking, or two routers taking the same series, make
each job once (the idempotency keys). A series that arrives after its study's jobs were made
is marked routed without a new job, as a series completed again is. Everything the router needs
is in the store: a restarted gateway routes what was left complete.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract import ModelCard

from .received import COMPLETE, RECEIVING, ROUTED, UNROUTED, ReceivedSeries, ReceivedStore, SeriesRecord
from .delivery.destinations import Send
from .routing import RoutingRules, SeriesFacts
from .store import JobStore

__all__ = ["RoutingOutcome", "SeriesRouter"]

log = logging.getLogger("medserve.router")

#: Seconds a study waits after its last series completed (the receiver's series silence default).
STUDY_SILENCE_S = 10.0


@dataclass
class RoutingOutcome:
    """What one pass did: jobs submitted (new ones), series routed and unrouted, studies still
    waiting for a series."""

    jobs: list[str] = field(default_factory=list)
    routed: int = 0
    unrouted: int = 0
    waiting_studies: int = 0


class SeriesRouter:
    """Routes the complete series of ``received`` into ``jobs`` by ``rules``."""

    def __init__(
        self, received: ReceivedStore, jobs: JobStore, rules: RoutingRules, *, output_format: str = "json", max_attempts: int = 3,
        study_silence_s: float = STUDY_SILENCE_S,
    ) -> None:
        self.received, self.jobs, self.rules = received, jobs, rules
        self.output_format, self.max_attempts, self.study_silence_s = output_format, max_attempts, study_silence_s

    def has_complete(self) -> bool:
        """Whether any series waits for routing (a pass without one needs no model cards)."""
        return bool(self.received.in_state(COMPLETE, 1))

    def route_complete(self, cards: Sequence[ModelCard], limit: int = 100, now: dt.datetime | None = None) -> RoutingOutcome:
        """One pass over the complete series (at most ``limit``), with the models served now;
        ``now`` (UTC) decides whether a study's silence is over."""
        now = now or dt.datetime.now(dt.timezone.utc)
        outcome, studies_seen = RoutingOutcome(), set()
        for record in self.received.in_state(COMPLETE, limit):
            if record.study_uid in studies_seen:
                continue
            siblings = self._study(record.study_uid)
            if any(self.rules.group_by(_facts(s)) == "study" for s in siblings):
                studies_seen.add(record.study_uid)
                self._route_study(record.study_uid, siblings, cards, now, outcome)
            else:
                self._route_series(record, cards, outcome, now)
        return outcome

    def _study(self, study_uid: str) -> list[SeriesRecord]:
        """Every series of a study the receiver knows, in any state."""
        query = select(ReceivedSeries).where(ReceivedSeries.study_uid == study_uid).order_by(ReceivedSeries.first_received_at)
        with Session(self.received.engine) as session:
            return [SeriesRecord.of(row) for row in session.scalars(query)]

    def _route_series(self, record: SeriesRecord, cards: Sequence[ModelCard], outcome: RoutingOutcome, now: dt.datetime | None = None) -> None:
        chosen = self.rules.route(_facts(record), cards)
        files = self.received.instances_of(record.series_uid)
        if not chosen and now is not None and self._may_join_a_study(record, now):
            outcome.waiting_studies += 1
            return
        if not chosen or not files:
            if self.received.mark(record.series_uid, UNROUTED, expected=COMPLETE):
                outcome.unrouted += 1
                for folder in {path.parent for path in files}:
                    shutil.rmtree(folder, ignore_errors=True)
                log.info("series unrouted", extra={"rules": self.rules.source, "instances": record.instances, "modality": record.modality or ""})
            return
        self._submit_series_jobs(record, chosen, _one_folder(files), outcome, cards)
        if self.received.mark(record.series_uid, ROUTED, expected=COMPLETE):
            outcome.routed += 1

    def _may_join_a_study(self, record: SeriesRecord, now: dt.datetime) -> bool:
        """Whether a series no rule takes waits before it is unrouted: while some rule groups by
        study, a series of its study arriving within the study silence may make it input of a
        study job (a PET series sent before its CT)."""
        if not any(route.group_by == "study" for route in self.rules.routes) or record.completed_at is None:
            return False
        return (now - record.completed_at).total_seconds() < self.study_silence_s

    def _submit_series_jobs(
        self, record: SeriesRecord, chosen: list[tuple[str, str]], folder: Path, outcome: RoutingOutcome, cards: Sequence[ModelCard]
    ) -> None:
        for rule, model in chosen:
            job, created = self.jobs.submit(
                model, "dimse", str(folder), idempotency_key=f"dimse:{record.series_uid}:{model}",
                study_uid=record.study_uid, series_uid=record.series_uid, output_format=self.output_format,
                max_attempts=self.max_attempts, sends=self.rules.sends(_facts(record), model, cards),
            )
            if created:
                outcome.jobs.append(job.id)
                log.info("series routed", extra={"rule": rule, "model": model, "job": job.id, "instances": record.instances})

    def _route_study(
        self, study_uid: str, siblings: list[SeriesRecord], cards: Sequence[ModelCard], now: dt.datetime, outcome: RoutingOutcome
    ) -> None:
        complete = [s for s in siblings if s.state == COMPLETE]
        last_completed = max((s.completed_at for s in complete if s.completed_at is not None), default=None)
        quiet = last_completed is None or (now - last_completed).total_seconds() >= self.study_silence_s
        if any(s.state == RECEIVING for s in siblings) or not quiet:
            outcome.waiting_studies += 1
            return
        study_models: dict[str, str] = {}
        study_sends: dict[str, list[Send]] = {}
        for series in siblings:
            if self.rules.group_by(_facts(series)) == "study":
                for rule, model in self.rules.route(_facts(series), cards):
                    study_models.setdefault(model, rule)
                    study_sends.setdefault(model, []).extend(self.rules.sends(_facts(series), model, cards))
        if not study_models:  # the study's rules chose no served model: each series on its own
            for series in complete:
                self._route_series(series, cards, outcome)
            return
        files = [path for series in siblings for path in self.received.instances_of(series.series_uid)]
        folder = _one_folder([path.parent for path in files])
        for model, rule in study_models.items():
            job, created = self.jobs.submit(
                model, "dimse", str(folder), idempotency_key=f"dimse-study:{study_uid}:{model}", study_uid=study_uid,
                output_format=self.output_format, max_attempts=self.max_attempts, sends=study_sends.get(model, ()),
            )
            if created:
                outcome.jobs.append(job.id)
                log.info("study routed", extra={"rule": rule, "model": model, "job": job.id, "series": len(siblings), "instances": len(files)})
        for series in complete:
            if self.rules.group_by(_facts(series)) == "series":
                chosen, own = self.rules.route(_facts(series), cards), self.received.instances_of(series.series_uid)
                if chosen and own:
                    self._submit_series_jobs(series, chosen, _one_folder(own), outcome, cards)
            if self.received.mark(series.series_uid, ROUTED, expected=COMPLETE):
                outcome.routed += 1


def _facts(record: SeriesRecord) -> SeriesFacts:
    """What the rules look at in a series row."""
    return SeriesFacts(
        modality=record.modality or "", body_part=record.body_part or "", series_description=record.series_description or "",
        calling_ae=record.calling_ae, called_ae=record.called_ae, slices=record.instances,
    )


def _one_folder(files: list[Path]) -> Path:
    """The one spool folder holding ``files`` (the receiver writes every instance of a series
    into ``<spool>/<study>/<series>/``: the series' files give its folder, the series folders
    of a study give the study's)."""
    folders = {path.parent for path in files}
    if len(folders) != 1:
        raise ValueError(f"the files are spread over {len(folders)} spool folders")
    return folders.pop()
