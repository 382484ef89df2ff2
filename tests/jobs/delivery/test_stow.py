"""The STOW-RS sender over real HTTP: one multipart/related request of the files with the bearer
token from the environment; the server's answer maps to stored, retried or dead-lettered.
(Storing into a real DICOMweb server, Orthanc's plugin, is tests/e2e/test_results_to_pacs.py.)"""

from __future__ import annotations

import email.parser
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from devtools.processes import free_port
from jobs.delivery import DeliveryFailure, DicomwebDestination
from jobs.delivery.stow import send_stow

FILES = [Path(get_testdata_file("CT_small.dcm")), Path(get_testdata_file("MR_small.dcm"))]


@pytest.fixture
def server():
    """An HTTP server answering each POST with the next ``(status, body)`` of ``answers``,
    recording each request's path, headers and body."""
    answers: list[tuple[int, dict]] = []
    requests: list[tuple[str, dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests.append((self.path, dict(self.headers), body))
            status, document = answers.pop(0)
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    port = free_port()
    httpd = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/dicom-web/", answers, requests
    httpd.shutdown()


def test_the_files_go_in_one_multipart_request_with_the_bearer_token(server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, answers, requests = server
    monkeypatch.setenv("PACS_TOKEN", "t0ken")
    answers.append((200, {"00081199": {"vr": "SQ", "Value": [{}, {}]}}))
    send_stow(DicomwebDestination(kind="dicomweb", url=url, token_env="PACS_TOKEN"), FILES)
    [(path, headers, body)] = requests
    assert path == "/dicom-web/studies" and headers["Authorization"] == "Bearer t0ken"
    message = email.parser.BytesParser().parsebytes(f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
    assert message.get_content_type() == "multipart/related" and message.get_param("type") == "application/dicom"
    assert [part.get_payload(decode=True) for part in message.get_payload()] == [path.read_bytes() for path in FILES]


@pytest.mark.parametrize(
    ("status", "document", "code", "retryable"),
    [
        (202, {"00081198": {"vr": "SQ", "Value": [{}]}}, "store_refused", False),
        (409, {}, "store_refused", False),
        (503, {}, "stow_failed", True),
        (429, {}, "stow_failed", True),
        (401, {}, "stow_refused", False),
        (400, {}, "stow_refused", False),
    ],
    ids=["some-objects-failed", "conflict", "unavailable", "too-many-requests", "unauthorized", "bad-request"],
)
def test_answers_map_to_codes_and_retry_decisions(server, status: int, document: dict, code: str, retryable: bool) -> None:
    url, answers, _ = server
    answers.append((status, document))
    with pytest.raises(DeliveryFailure) as failed:
        send_stow(DicomwebDestination(kind="dicomweb", url=url), FILES)
    assert (failed.value.code, failed.value.retryable) == (code, retryable)
    assert f"HTTP {status}" in failed.value.message


def test_nothing_listening_is_unreachable_and_holds_the_destination() -> None:
    with pytest.raises(DeliveryFailure) as failed:
        send_stow(DicomwebDestination(kind="dicomweb", url=f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=2), FILES)
    assert (failed.value.code, failed.value.destination_down) == ("destination_unreachable", True)
