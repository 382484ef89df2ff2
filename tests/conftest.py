"""Shared fixtures: real DICOM files written by others, the demo model repository, and a
real ``tritonserver`` (one per test session, never a mock)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from devtools.processes import GatewayProcess
from devtools.testdata import pydicom_test_file as pydicom_file
from devtools.testdata import pynetdicom_test_file as pynetdicom_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def testdata():
    """``testdata("MR_small.dcm")``: path of a pydicom / pydicom-data test file."""
    return pydicom_file


@pytest.fixture(scope="session")
def real_ct_files() -> dict[str, Path]:
    """Single-frame CT instances from three independent sources."""
    return {
        "693_UNCI": pydicom_file("693_UNCI.dcm"),  # pydicom-data, 512x512, 16/14 bit
        "CT_small": pydicom_file("CT_small.dcm"),  # pydicom, 128x128 signed
        "CTImageStorage": pynetdicom_file("CTImageStorage.dcm"),  # pynetdicom
    }


@pytest.fixture(scope="session")
def no_pixel_data_file() -> Path:
    """A real CT instance with no (7FE0,0010) Pixel Data (pydicom's TINY_ALPHA DICOMDIR set)."""
    return pydicom_file("CT_small.dcm").parent / "dicomdirtests" / "TINY_ALPHA" / "PT000000" / "ST000000" / "SE000000" / "IM000000"


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """The demo repository (exported from the committed weights when missing)."""
    from devtools.zoo.repository import ensure_demo_repository

    repository = PROJECT_ROOT / "model_repository"
    ensure_demo_repository(repository, log=lambda _: None)
    return repository


@pytest.fixture(scope="session")
def triton(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator["TritonServer"]:
    from devtools.tritonserver import TritonPorts, TritonServer

    server = TritonServer(model_repository, tmp_path_factory.mktemp("triton"), ports=TritonPorts.free(), poll_seconds=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gateway(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator["TestClient"]:
    """The FastAPI app in-process, talking gRPC to the real Triton (its work directory, with the
    job store, in a temporary folder)."""
    from fastapi.testclient import TestClient

    from gateway.config import Settings
    from gateway.main import create_app

    settings = Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, work_dir=str(tmp_path_factory.mktemp("work")))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


os.environ.setdefault("OMP_NUM_THREADS", "1")


def start_gateway_process(triton, work: Path, **settings: str) -> GatewayProcess:
    """The gateway as production runs it (``python -m gateway.server``), JSON logs to a file in
    ``work``, serving once ``/healthz`` answers; ``workers="2"`` starts two worker processes,
    whose metrics files go to its ``metrics_dir``."""
    gateway = GatewayProcess(triton.grpc_url, work, settings=settings)
    gateway.start()
    return gateway.wait_healthy()


@pytest.fixture(scope="session")
def live_gateway(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A production-like gateway with an audit log, for log and audit assertions."""
    work = tmp_path_factory.mktemp("gateway")
    gateway = start_gateway_process(triton, work, audit_log_path=str(work / "audit.jsonl"), log_level="debug")
    try:
        yield {"url": gateway.url, "log": gateway.log, "audit": work / "audit.jsonl"}
    finally:
        gateway.stop()


@pytest.fixture(scope="session")
def start_gateway(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """``start_gateway(**settings)``: more gateway processes (stopped at session end)."""
    started: list[GatewayProcess] = []
    work = tmp_path_factory.mktemp("gateways")

    def start(**settings: str) -> GatewayProcess:
        started.append(start_gateway_process(triton, work, **settings))
        return started[-1]

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


# deepbet (devtools/thirdparty): a real third-party cascade exported from its wheel's specs with
# `medserve export` (both stages, about 2 minutes) and served by a Triton of its own, once per
# session for every test that needs it (tests/e2e/test_byom_deepbet.py, tests/bench/test_script_baseline.py).


@pytest.fixture(scope="session")
def deepbet_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deepbet's export project: both stages' specs, its validation cases and the enhanced MR."""
    from devtools.thirdparty.deepbet_export import write_deepbet_project

    return write_deepbet_project(tmp_path_factory.mktemp("deepbet"))


@pytest.fixture(scope="session")
def deepbet_brain(deepbet_project: Path) -> Path:
    """The real enhanced multi-frame brain MR (the MNI T1 in a Philips header) deepbet is checked on."""
    return deepbet_project.parent / "cases" / "brain" / "brain.dcm"


@pytest.fixture(scope="session")
def deepbet_exported(deepbet_project: Path, tmp_path_factory: pytest.TempPathFactory):
    """``(repository, export result, export log lines)`` of deepbet's cascade."""
    from export.pipeline import export_model
    from export.spec import load_spec

    repository = tmp_path_factory.mktemp("deepbet-repository") / "models"
    lines: list[str] = []
    result = export_model(load_spec(deepbet_project), repository, log=lines.append)
    return repository, result, lines


@pytest.fixture(scope="session")
def deepbet_served(deepbet_exported, tmp_path_factory: pytest.TempPathFactory) -> Iterator["TestClient"]:
    """The gateway (in-process) over a Triton serving deepbet's exported repository."""
    from fastapi.testclient import TestClient

    from devtools.tritonserver import TritonPorts, TritonServer
    from gateway.config import Settings
    from gateway.main import create_app

    repository, _, _ = deepbet_exported
    server = TritonServer(repository, tmp_path_factory.mktemp("deepbet-triton"), ports=TritonPorts.free(), poll_seconds=0)
    server.start()
    try:
        with TestClient(create_app(Settings(triton_grpc_url=server.grpc_url, model_cache_ttl_s=0)), raise_server_exceptions=False) as client:
            yield client
    finally:
        server.stop()
