"""``GET /v1/models/{name}/report``: the export report a model was exported with, read from its
card in Triton (contract 1.3), for a page to show."""

from __future__ import annotations

import json
import shutil

from fastapi.testclient import TestClient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from devtools.tritonserver import TritonPorts, TritonServer
from gateway.config import Settings
from gateway.main import create_app


def test_the_report_is_the_document_export_wrote_beside_the_config(gateway: TestClient, model_repository) -> None:
    for name in ("ct_nodule_classifier", "ct_nodule_segmenter_3d_int8"):
        response = gateway.get(f"/v1/models/{name}/report")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report == json.loads((model_repository / name / "export_report.json").read_text())
        assert {step["status"] for step in report["steps"]} <= {"OK", "SKIPPED", "WARN", "FAIL"}
        assert report["variants"] and report["environment"]


def test_an_unknown_model_is_model_not_found(gateway: TestClient) -> None:
    response = gateway.get("/v1/models/no_such_model/report")
    assert response.status_code == 404 and response.json()["code"] == "model_not_found"


def test_a_model_exported_before_the_report_was_in_the_card_has_none(model_repository, tmp_path) -> None:
    """A contract 1.2 config (no ``export_report`` parameter) is served as before; only its
    report is unavailable."""
    repository = tmp_path / "repository"
    shutil.copytree(model_repository / "ct_nodule_classifier", repository / "ct_nodule_classifier")
    config_path = repository / "ct_nodule_classifier" / "config.pbtxt"
    config = text_format.Parse(config_path.read_text(), model_config_pb2.ModelConfig())
    del config.parameters["export_report"]
    config.parameters["medserve_contract"].string_value = "1.2"
    config_path.write_text(text_format.MessageToString(config))
    server = TritonServer(repository, tmp_path / "work", ports=TritonPorts.free(), poll_seconds=0).start()
    try:
        with TestClient(create_app(Settings(triton_grpc_url=server.grpc_url, model_cache_ttl_s=0)), raise_server_exceptions=False) as client:
            assert client.get("/v1/models/ct_nodule_classifier").status_code == 200
            response = client.get("/v1/models/ct_nodule_classifier/report")
            assert response.status_code == 404, response.text
            body = response.json()
            assert body["code"] == "report_unavailable" and body["request_id"]
    finally:
        server.stop()
