"""Against a real Triton: a model under an unknown contract major is listed as not servable
with its reason and makes /readyz not ready; a description that looks like JSON serves."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.config import Settings
from gateway.main import create_app
from devtools.tritonserver import TritonPorts, TritonServer

SOURCE = "ct_nodule_classifier"
FUTURE, DRAFT = "future_classifier", "draft_classifier"


def _copy(source: Path, target: Path, **parameters: str) -> None:
    """A copy of an exported model directory under another name, with ``parameters`` replaced."""
    shutil.copytree(source, target)
    config = target / "config.pbtxt"
    text = re.sub(r'^name: ".*"$', f'name: "{target.name}"', config.read_text(), count=1, flags=re.M)
    for key, value in parameters.items():
        text, count = re.subn(rf'(key: "{key}" value: {{ string_value: )".*?(?<!\\)"', rf'\1"{value}"', text)
        assert count == 1, key
    config.write_text(text)


@pytest.fixture(scope="module")
def client(model_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    repository = tmp_path_factory.mktemp("contract") / "repository"
    repository.mkdir()
    _copy(model_repository / SOURCE, repository / FUTURE, medserve_contract="3.0")
    _copy(model_repository / SOURCE, repository / DRAFT, description="[draft] {a description, not JSON")
    server = TritonServer(repository, tmp_path_factory.mktemp("work"), ports=TritonPorts.free(), poll_seconds=0).start()
    try:
        with TestClient(create_app(Settings(triton_grpc_url=server.grpc_url, model_cache_ttl_s=0)), raise_server_exceptions=False) as client:
            yield client
    finally:
        server.stop()


def test_an_unknown_major_is_listed_not_servable_and_not_ready(client: TestClient, real_ct_files) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models[DRAFT] == {"name": DRAFT, "version": "1", "state": "READY"}
    assert models[FUTURE]["servable"] is False and "medserve contract 3.0" in models[FUTURE]["reason"]

    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["models"] == {DRAFT: True, FUTURE: False}
    assert ready.json()["not_servable"][FUTURE] == models[FUTURE]["reason"]

    answer = client.post(f"/v1/models/{FUTURE}/predict", content=real_ct_files["CT_small"].read_bytes(), headers={"Content-Type": "application/dicom"})
    assert answer.status_code == 500 and answer.json()["code"] == "model_misconfigured"
    assert "this gateway reads contract 1.x" in answer.json()["message"]


def test_a_description_that_looks_like_json_serves(client: TestClient, real_ct_files) -> None:
    assert client.get(f"/v1/models/{DRAFT}").json()["description"] == "[draft] {a description, not JSON"
    answer = client.post(f"/v1/models/{DRAFT}/predict", content=real_ct_files["CT_small"].read_bytes(), headers={"Content-Type": "application/dicom"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["task"] == "classification"
