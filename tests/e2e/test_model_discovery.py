"""Models added to or removed from the repository appear and disappear without a restart."""

from __future__ import annotations

import re
import shutil
import time

from fastapi.testclient import TestClient

from gateway.config import Settings
from gateway.main import create_app
from devtools.tritonserver import TritonPorts, TritonServer

MODEL = "ct_nodule_classifier"


def _copy_model(repository, source, name: str) -> None:
    """Stage the copy beside the repository and move it in at once, as export does."""
    staging = repository.parent / f".{name}"
    shutil.copytree(source, staging)
    config = staging / "config.pbtxt"
    config.write_text(re.sub(r'^name: ".*"$', f'name: "{name}"', config.read_text(), count=1, flags=re.M))
    staging.rename(repository / name)


def _wait_for(client: TestClient, predicate, timeout_s: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        models = client.get("/v1/models").json()["models"]
        if predicate(models):
            return models
        time.sleep(0.5)
    raise AssertionError(f"repository did not change in {timeout_s}s: {models}")


def test_models_come_and_go_while_serving(model_repository, real_ct_files, tmp_path) -> None:
    repository = tmp_path / "repository"
    repository.mkdir()
    _copy_model(repository, model_repository / MODEL, MODEL)
    server = TritonServer(repository, tmp_path / "work", ports=TritonPorts.free(), poll_seconds=1).start()
    try:
        settings = Settings(triton_grpc_url=server.grpc_url, model_cache_ttl_s=0)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert [m["name"] for m in client.get("/v1/models").json()["models"]] == [MODEL]

            _copy_model(repository, model_repository / MODEL, "added_model")
            _wait_for(client, lambda ms: any(m["name"] == "added_model" and m["state"] == "READY" for m in ms))
            data = real_ct_files["CT_small"].read_bytes()
            answer = client.post("/v1/models/added_model/predict", content=data, headers={"Content-Type": "application/dicom"})
            assert answer.status_code == 200 and answer.json()["model"] == "added_model"

            shutil.rmtree(repository / "added_model")
            _wait_for(client, lambda ms: all(m["name"] != "added_model" or m["state"] != "READY" for m in ms))
            gone = client.post("/v1/models/added_model/predict", content=data, headers={"Content-Type": "application/dicom"})
            assert gone.status_code in (404, 503)
            assert gone.json()["code"] in ("model_not_found", "model_not_ready")
            ready = client.get("/readyz")  # an intentionally removed model does not make the service unready
            assert ready.status_code == 200, ready.json()
    finally:
        server.stop()
