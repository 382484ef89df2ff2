"""With Triton stopped, readiness and predictions answer 503 with Retry-After, not 500."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gateway.config import Settings
from gateway.main import create_app
from devtools.tritonserver import TritonPorts, TritonServer


def test_stopped_triton_gives_503(model_repository, real_ct_files, tmp_path) -> None:
    server = TritonServer(model_repository, tmp_path, ports=TritonPorts.free(), poll_seconds=0).start()
    settings = Settings(triton_grpc_url=server.grpc_url, model_cache_ttl_s=0, triton_probe_timeout_s=1.0, triton_timeout_s=2.0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 200
        server.stop()

        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["triton"] is False
        assert int(ready.headers["Retry-After"]) > 0

        response = client.post(
            "/v1/models/ct_nodule_classifier/predict",
            content=real_ct_files["CT_small"].read_bytes(),
            headers={"Content-Type": "application/dicom"},
        )
        assert response.status_code == 503
        assert response.json()["code"] == "triton_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert client.get("/healthz").status_code == 200
