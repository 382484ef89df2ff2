"""Every way a hospital system sends DICOM reaches the model: one instance, STOW-RS
multipart/related (encoded by the real dicomweb-client), multipart/form-data and ZIP; and
every envelope is bounded as a whole: one expansion budget per request, inflation off the
event loop, request heads capped by the HTTP server, malformed envelopes a 400."""

from __future__ import annotations

import io
import json
import socket
import threading
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient

from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume

MODEL = "ct_nodule_classifier"


@pytest.fixture(scope="module")
def series_files(tmp_path_factory) -> list:
    volume, _ = chest_volume(np.random.default_rng(5), slices=3, size=256, nodules=1)
    return write_ct_series(tmp_path_factory.mktemp("series"), volume, spacing_mm=(2.5, 1.4, 1.4))


def _stow_body(files) -> tuple[bytes, str]:
    """The exact body and Content-Type that dicomweb-client's STOW-RS store_instances sends."""
    content_type = 'multipart/related; type="application/dicom"; boundary="0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"'
    client = DICOMwebClient(url="http://unused.invalid")
    return client._encode_multipart_message([f.read_bytes() for f in files], content_type), content_type


def _assert_per_instance(response, files) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["top_label"] is None and body["probabilities"] is None
    import pydicom

    expected = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    assert {i["sop_instance_uid"] for i in body["instances"]} == expected
    for instance in body["instances"]:
        assert sum(p["probability"] for p in instance["probabilities"]) == pytest.approx(1.0, abs=1e-5)


def test_stow_rs_multipart_related(gateway: TestClient, series_files) -> None:
    body, content_type = _stow_body(series_files)
    _assert_per_instance(gateway.post(f"/v1/models/{MODEL}/predict", content=body, headers={"Content-Type": content_type}), series_files)


def test_multipart_form_data(gateway: TestClient, series_files) -> None:
    files = [("image", (f.name, f.read_bytes(), "application/dicom")) for f in series_files]
    _assert_per_instance(gateway.post(f"/v1/models/{MODEL}/predict", files=files, data={"note": "ignored form field"}), series_files)


def test_zip_of_a_series(gateway: TestClient, series_files) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for f in series_files:
            handle.write(f, f"study/series/{f.name}")
        handle.writestr("README.txt", "not DICOM, skipped")
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=archive.getvalue(), headers={"Content-Type": "application/zip"})
    _assert_per_instance(response, series_files)


def test_same_instance_gives_same_answer_in_every_envelope(gateway: TestClient, series_files) -> None:
    single = gateway.post(f"/v1/models/{MODEL}/predict", content=series_files[0].read_bytes(), headers={"Content-Type": "application/dicom"}).json()
    body, content_type = _stow_body(series_files)
    multi = gateway.post(f"/v1/models/{MODEL}/predict", content=body, headers={"Content-Type": content_type}).json()
    import pydicom

    uid = pydicom.dcmread(series_files[0], stop_before_pixels=True).SOPInstanceUID
    [same] = [i for i in multi["instances"] if i["sop_instance_uid"] == uid]
    assert same["probabilities"][0]["label"] == single["top_label"]
    assert same["probabilities"][0]["probability"] == pytest.approx(single["probabilities"][0]["probability"], abs=1e-6)


def _corrupt_deflate_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("a.dcm", b"\0" * 128 + b"DICM" + bytes(range(256)) * 64)
    corrupt = bytearray(archive.getvalue())
    corrupt[60:100] = b"\xff" * 40  # inside the member's deflate stream
    return bytes(corrupt)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"PK\x03\x04 not really a zip", "application/zip", 400, "invalid_upload"),  # corrupt ZIP
        (b"--b\r\nContent-Type: application/dicom\r\n\r\nxx", 'multipart/related; type="application/dicom"', 400, "invalid_upload"),  # no boundary
        (b"x", 'multipart/related; type="image/jpeg"; boundary=b', 415, "unsupported_media_type"),  # not DICOM parts
        (b"--b--\r\n", 'multipart/related; type="application/dicom"; boundary=b', 400, "empty_body"),  # no parts
        (f"--{'x' * 300}\r\n\r\nxx\r\n--{'x' * 300}--\r\n".encode(), f"multipart/form-data; boundary={'x' * 300}", 400, "invalid_upload"),  # boundary over RFC 2046's 70
        (b'--b\r\nContent-Disposition: form-data; name="\xff\xfe"; filename="a.dcm"\r\n\r\nxx\r\n--b--\r\n', "multipart/form-data; boundary=b", 400, "invalid_upload"),  # field name not UTF-8
        (_corrupt_deflate_zip(), "application/zip", 400, "invalid_upload"),  # corrupt deflate data in a member
    ],
)
def test_malformed_envelopes(gateway: TestClient, body: bytes, content_type: str, status: int, code: str) -> None:
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_a_bad_instance_inside_a_series_is_a_clear_400(gateway: TestClient, series_files) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(series_files[0], "ok.dcm")
        handle.writestr("broken.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00")
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=archive.getvalue(), headers={"Content-Type": "application/zip"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_dicom"


# --- bounded as a whole, against a real gateway process (python -m gateway.server) ------------

MIB = 1 << 20


@pytest.fixture(scope="module")
def bounded_gateway(start_gateway):
    """A gateway process with the default caps (512 MiB body and expansion budget)."""
    return start_gateway()


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process (``VmRSS``) or its peak so far (``VmHWM``), in KiB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _zero_filled_dicom_zip(inflated_bytes: int) -> bytes:
    """A ZIP whose one member is a Part 10 preamble followed by zeros (~1000:1 deflate)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as handle, handle.open("bomb.dcm", "w", force_zip64=True) as member:
        member.write(b"\0" * 128 + b"DICM")
        zeros = bytes(MIB)
        for _ in range(inflated_bytes // MIB):
            member.write(zeros)
    return archive.getvalue()


def _post(url: str, body: bytes, content_type: str, timeout_s: float = 120) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_zip_parts_each_under_the_cap_are_refused_together(bounded_gateway) -> None:
    part = _zero_filled_dicom_zip(200 * MIB)  # 3 x 200 MiB inflated > the 512 MiB budget
    body = b"".join(b'--b\r\nContent-Disposition: form-data; name="series"; filename="s.zip"\r\nContent-Type: application/zip\r\n\r\n' + part + b"\r\n" for _ in range(3))
    status, error = _post(f"{bounded_gateway.url}/v1/models/{MODEL}/predict", body + b"--b--\r\n", "multipart/form-data; boundary=b")
    assert (status, error["code"]) == (413, "payload_too_large"), error
    assert "archives expand beyond" in error["message"]


def test_a_zip_bomb_is_refused_while_the_gateway_keeps_answering(bounded_gateway) -> None:
    bomb = _zero_filled_dicom_zip(600 * MIB)
    rss_before_kib = _rss_kib(bounded_gateway.process.pid)
    answer: dict = {}

    def send_bomb() -> None:
        answer["status"], answer["error"] = _post(f"{bounded_gateway.url}/v1/models/{MODEL}/predict", bomb, "application/zip")

    refusal = threading.Thread(target=send_bomb)
    refusal.start()
    health_answers_during_refusal = 0
    while refusal.is_alive():
        with urllib.request.urlopen(f"{bounded_gateway.url}/healthz", timeout=0.5) as health:  # inflation is off the event loop
            assert health.status == 200
        health_answers_during_refusal += refusal.is_alive()
    refusal.join()
    assert (answer["status"], answer["error"]["code"]) == (413, "payload_too_large")
    assert health_answers_during_refusal >= 1
    peak_growth_mib = (_rss_kib(bounded_gateway.process.pid, "VmHWM") - rss_before_kib) / 1024
    assert peak_growth_mib < 512 * 1.25 + 64  # the budget (512 MiB) and a bytearray's slack, never the 600 MiB


def test_a_64_mib_header_is_refused_without_being_buffered(bounded_gateway) -> None:
    pid = bounded_gateway.process.pid
    rss_before_kib = _rss_kib(pid)
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", bounded_gateway.port), timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: medserve\r\nX-Large: ")
        try:
            while sent < 64 * MIB:
                connection.sendall(b"a" * (64 * 1024))
                sent += 64 * 1024
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection while the header was still coming
        try:
            answer = connection.recv(65536)
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 431 ") or sent < 64 * MIB
    if answer:
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["code"] == "request_header_too_large"
    assert (_rss_kib(pid) - rss_before_kib) / 1024 < 8  # MiB: the header was never held
    with urllib.request.urlopen(f"{bounded_gateway.url}/healthz", timeout=5) as health:
        assert health.status == 200


def test_a_hundred_and_one_headers_are_refused_with_the_json_error(bounded_gateway) -> None:
    headers = "".join(f"X-Header-{i}: v\r\n" for i in range(100))
    with socket.create_connection(("127.0.0.1", bounded_gateway.port), timeout=10) as connection:
        connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: medserve\r\n{headers}\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["code"] == "request_header_too_large"
