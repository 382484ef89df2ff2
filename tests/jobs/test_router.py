"""The router: complete series → one job per chosen model, idempotent, on both backends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from contract import ModelCard, ModelInput, ModelOutput
from jobs.db import make_engine
from jobs.received import COMPLETE, RECEIVING, ROUTED, UNROUTED, ReceivedStore
from jobs.router import SeriesRouter
from jobs.routing import RoutingRules
from jobs.store import JobStore
from preprocessing import PreprocessingSpec


def _card(name: str, modality: str) -> ModelCard:
    spec = PreprocessingSpec(modalities=(modality,), layout="CHW")
    return ModelCard(name=name, task="segmentation-2d", description="", preprocessing=spec, max_batch_size=1, export_report_digest="",
                     inputs=[ModelInput("image", "float32", [-1, 1, 64, 64], modality, spec)],
                     outputs=[ModelOutput("labels", "segmentation_labels", ["background", "organ"], None, "uint8")])


CARDS = [_card("ct_model", "CT"), _card("other_ct_model", "CT"), _card("mr_model", "MR")]


@pytest.fixture
def stores(database_url: str):
    engine = make_engine(database_url)
    yield ReceivedStore(engine), JobStore(engine)
    engine.dispose()


def _receive(received: ReceivedStore, spool: Path, series: str, modality: str, count: int = 3, complete: bool = True, study: str = "1.2.3") -> Path:
    """``count`` instances of a series written and recorded as the receiver does (``<spool>/<study>/<series>/``)."""
    folder = spool / study / series
    folder.mkdir(parents=True)
    for k in range(count):
        path = folder / f"{k}.dcm"
        path.write_bytes(b"DICM")
        received.record_instance(sop_instance_uid=f"{series}.{k}", series_uid=series, study_uid=study, path=path, size_bytes=4,
                                 calling_ae="PACS", called_ae="MEDSERVE", transfer_syntax="1.2.840.10008.1.2.1", modality=modality)
    if complete:
        received.mark(series, COMPLETE)
    return folder


def test_each_complete_series_becomes_one_job_per_chosen_model_once(stores, tmp_path):
    received, jobs = stores
    folder = _receive(received, tmp_path, "1.2.3.1", "CT")
    _receive(received, tmp_path, "1.2.3.2", "CT", complete=False)  # still receiving: left alone
    router = SeriesRouter(received, jobs, RoutingRules.load(None))
    outcome = router.route_complete(CARDS)
    assert (len(outcome.jobs), outcome.routed, outcome.unrouted) == (2, 1, 0)
    made = jobs.list(series_uid="1.2.3.1")
    assert sorted(j.model for j in made) == ["ct_model", "other_ct_model"]
    assert {(j.source, j.input_dir, j.state, j.study_uid) for j in made} == {("dimse", str(folder), "queued", "1.2.3")}
    assert received.series("1.2.3.1").state == ROUTED and received.series("1.2.3.2").state == RECEIVING
    # a series completed again (a late instance reopened it) is not made into jobs twice
    received.mark("1.2.3.1", COMPLETE)
    assert router.route_complete(CARDS).jobs == [] and len(jobs.list(series_uid="1.2.3.1")) == 2


def test_a_series_no_rule_takes_is_unrouted_and_its_files_removed(stores, tmp_path):
    received, jobs = stores
    folder = _receive(received, tmp_path, "1.2.3.9", "US")
    outcome = SeriesRouter(received, jobs, RoutingRules.load(None)).route_complete(CARDS)
    assert (outcome.jobs, outcome.routed, outcome.unrouted) == ([], 0, 1)
    assert received.series("1.2.3.9").state == UNROUTED and not folder.exists()
    assert jobs.list(series_uid="1.2.3.9") == []


STUDY_RULES = (
    "routes:\n"
    "  - {name: fusion, match: {modality: [CT]}, models: [ct_pet_model], group_by: study}\n"
    "  - {name: mr, match: {modality: [MR]}, models: [mr_model]}\n"
)


def test_a_study_grouped_by_rule_waits_for_all_its_series_and_silence_then_one_job_per_model(stores, tmp_path):
    received, jobs = stores
    rules = tmp_path / "routes.yaml"
    rules.write_text(STUDY_RULES)
    router = SeriesRouter(received, jobs, RoutingRules.load(rules), study_silence_s=10.0)
    ct = _receive(received, tmp_path, "1.2.3.1", "CT")
    pet = _receive(received, tmp_path, "1.2.3.2", "PT", complete=False)  # no rule takes PT alone: input of the study's job
    now = received.series("1.2.3.1").completed_at
    later = now + dt.timedelta(seconds=10.5)

    waiting = router.route_complete(CARDS, now=later)  # the PET series is still receiving
    assert (waiting.jobs, waiting.routed, waiting.waiting_studies) == ([], 0, 1) and received.series("1.2.3.1").state == COMPLETE
    received.mark("1.2.3.2", COMPLETE)
    last = received.series("1.2.3.2").completed_at
    assert router.route_complete(CARDS, now=last + dt.timedelta(seconds=9)).jobs == []  # within the silence after the last series
    done = router.route_complete(CARDS, now=last + dt.timedelta(seconds=10))

    assert (len(done.jobs), done.routed, done.unrouted) == (1, 2, 0)
    [job] = jobs.list(study_uid="1.2.3")
    assert (job.model, job.source, job.input_dir, job.series_uid) == ("ct_pet_model", "dimse", str(tmp_path / "1.2.3"), None)
    assert jobs.by_idempotency_key("dimse-study:1.2.3:ct_pet_model").id == job.id
    assert {received.series(s).state for s in ("1.2.3.1", "1.2.3.2")} == {ROUTED} and ct.exists() and pet.exists()
    # a series of the study completed again is not made into a second study job
    received.mark("1.2.3.2", COMPLETE)
    assert router.route_complete(CARDS, now=last + dt.timedelta(seconds=60)).jobs == [] and len(jobs.list(study_uid="1.2.3")) == 1


def test_series_grouped_series_of_a_study_grouped_study_keep_their_own_jobs(stores, tmp_path):
    received, jobs = stores
    rules = tmp_path / "routes.yaml"
    rules.write_text(STUDY_RULES)
    _receive(received, tmp_path, "1.2.3.1", "CT")
    mr = _receive(received, tmp_path, "1.2.3.3", "MR")
    last = max(received.series(s).completed_at for s in ("1.2.3.1", "1.2.3.3"))
    outcome = SeriesRouter(received, jobs, RoutingRules.load(rules)).route_complete(CARDS, now=last + dt.timedelta(seconds=10))
    assert (len(outcome.jobs), outcome.routed) == (2, 2)
    made = {j.model: j for j in jobs.list(study_uid="1.2.3")}
    assert (made["ct_pet_model"].input_dir, made["ct_pet_model"].series_uid) == (str(tmp_path / "1.2.3"), None)
    assert (made["mr_model"].input_dir, made["mr_model"].series_uid) == (str(mr), "1.2.3.3")


def test_while_a_rule_groups_by_study_a_series_no_rule_takes_waits_the_study_silence_for_its_study(stores, tmp_path):
    received, jobs = stores
    rules = tmp_path / "routes.yaml"
    rules.write_text(STUDY_RULES)
    router = SeriesRouter(received, jobs, RoutingRules.load(rules), study_silence_s=10.0)
    pet = _receive(received, tmp_path, "1.2.3.2", "PT")  # sent before its study's CT
    completed = received.series("1.2.3.2").completed_at
    assert router.route_complete(CARDS, now=completed + dt.timedelta(seconds=5)).unrouted == 0 and pet.exists()
    _receive(received, tmp_path, "1.2.3.1", "CT")
    last = received.series("1.2.3.1").completed_at
    outcome = router.route_complete(CARDS, now=last + dt.timedelta(seconds=10))
    assert (len(outcome.jobs), outcome.routed, outcome.unrouted) == (1, 2, 0) and pet.exists()
    # alone past the silence, a series no rule takes is unrouted as ever
    lone = _receive(received, tmp_path, "1.2.4.1", "PT", study="1.2.4")
    assert router.route_complete(CARDS, now=received.series("1.2.4.1").completed_at + dt.timedelta(seconds=10)).unrouted == 1
    assert not lone.exists()
