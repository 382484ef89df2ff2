"""The OpenAPI document covers every route, request body type and error answer, and every
error shares one schema."""

from __future__ import annotations

import pytest

from gateway.config import Settings
from gateway.main import create_app


@pytest.fixture(scope="module")
def schema() -> dict:
    return create_app(Settings()).openapi()


def test_every_route_is_documented(schema: dict) -> None:
    documented = {(path, method.upper()) for path, item in schema["paths"].items() for method in item}
    assert documented >= {
        ("/v1/models", "GET"),
        ("/v1/models/{name}", "GET"),
        ("/v1/models/{name}/predict", "POST"),
        ("/dicomweb/studies", "POST"),
        ("/healthz", "GET"),
        ("/readyz", "GET"),
        ("/metrics", "GET"),
    }


@pytest.mark.parametrize("path", ["/v1/models/{name}/predict", "/dicomweb/studies"])
def test_upload_routes_document_every_body_type(schema: dict, path: str) -> None:
    content = schema["paths"][path]["post"]["requestBody"]["content"]
    assert {"application/dicom", 'multipart/related; type="application/dicom"', "multipart/form-data", "application/zip"} <= set(content)


def test_predict_documents_its_formats_and_errors(schema: dict) -> None:
    responses = schema["paths"]["/v1/models/{name}/predict"]["post"]["responses"]
    assert {"image/png", "application/gzip", "application/dicom", "application/json"} <= set(responses["200"]["content"])
    assert {"400", "401", "403", "404", "406", "413", "415", "422", "429", "502", "503", "504"} <= set(responses)
    parameters = {p["name"] for p in schema["paths"]["/v1/models/{name}/predict"]["post"]["parameters"]}
    assert {"name", "format", "slice"} <= parameters


def test_all_errors_share_one_schema(schema: dict) -> None:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or (path, status) == ("/readyz", "503"):  # readiness reports itself, for probes
                    continue
                if "application/dicom+json" in response.get("content", {}):  # STOW-RS answers in DICOM JSON (PS3.18)
                    continue
                body = response.get("content", {}).get("application/json", {}).get("schema", {})
                assert body == {"$ref": "#/components/schemas/ErrorBody"}, f"{method.upper()} {path} {status}: {body}"
    assert set(schema["components"]["schemas"]["ErrorBody"]["properties"]) == {"code", "message", "request_id"}


def test_the_output_format_is_an_enum_in_the_openapi_document() -> None:
    from gateway.outputs.registry import OutputFormat

    document = create_app(Settings(triton_grpc_url="127.0.0.1:9")).openapi()
    parameters = document["paths"]["/v1/models/{name}/predict"]["post"]["parameters"]
    (output_format,) = [p for p in parameters if p["name"] == "format"]
    assert output_format["schema"]["enum"] == [f.value for f in OutputFormat]
