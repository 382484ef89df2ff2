"""The receive stage bounds a request body as a whole: one expansion budget across every ZIP of
every part, parts counted while the body streams, boundaries and field names checked, and every
malformed envelope a 400 (never a 500)."""

from __future__ import annotations

import asyncio
import io
import zipfile

import pytest
from starlette.requests import Request

from gateway.config import Settings
from gateway.errors import EmptyBody, InvalidUpload, PayloadTooLarge, UnsupportedMediaType
from gateway.uploads import DicomPart, UploadLimits, receive
from devtools.testdata import pydicom_test_file

CT = pydicom_test_file("CT_small.dcm").read_bytes()
MR = pydicom_test_file("MR_small.dcm").read_bytes()
CHUNK = 64 * 1024


class Body:
    """A request body as the server delivers it, in chunks; remembers how many were read."""

    def __init__(self, data: bytes, content_type: str) -> None:
        self.chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
        self.total = len(self.chunks)
        self.content_type = content_type

    @property
    def chunks_read(self) -> int:
        return self.total - len(self.chunks)

    def request(self) -> Request:
        async def next_message() -> dict:
            chunk = self.chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

        headers = [(b"content-type", self.content_type.encode("latin-1"))]
        return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, next_message)


def _receive(body: Body, limits: UploadLimits = UploadLimits()) -> list[DicomPart]:
    return asyncio.run(receive(body.request(), limits))


def _zip(*members: bytes) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for i, data in enumerate(members):
            handle.writestr(f"{i}.dcm", data)
    return archive.getvalue()


def _multipart(parts: list[tuple[bytes, bytes]], boundary: str = "b0undary") -> Body:
    """``parts``: (header block, body) pairs of a multipart/form-data body."""
    encoded = b"".join(b"--" + boundary.encode() + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n" for headers, data in parts)
    return Body(encoded + b"--" + boundary.encode() + b"--\r\n", f"multipart/form-data; boundary={boundary}")


def _file_part(data: bytes, media_type: str = "application/dicom", name: bytes = b"image", filename: bytes = b"x.dcm") -> tuple[bytes, bytes]:
    return b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\nContent-Type: ' + media_type.encode(), data


class TestEnvelopes:
    def test_one_instance(self) -> None:
        assert _receive(Body(CT, "application/dicom")) == [DicomPart(CT)]

    def test_form_fields_name_their_files_and_plain_fields_are_skipped(self) -> None:
        parts = _receive(_multipart([_file_part(CT, name=b"ct"), (b'Content-Disposition: form-data; name="note"', b"hello")]))
        assert parts == [DicomPart(CT, "ct", "x.dcm")]

    def test_a_zip_body(self) -> None:
        assert [p.data for p in _receive(Body(_zip(CT, MR), "application/zip"))] == [CT, MR]

    def test_zip_parts_keep_their_field(self) -> None:
        parts = _receive(_multipart([_file_part(_zip(CT), "application/zip", name=b"ct")]))
        assert [(p.data, p.field) for p in parts] == [(CT, "ct")]

    def test_an_unknown_content_type_with_non_ascii_bytes_is_415(self) -> None:
        with pytest.raises(UnsupportedMediaType):
            _receive(Body(CT, "image/\xe9\xff"))


class TestExpansionBudget:
    def test_one_budget_spans_the_zip_parts_of_one_body(self) -> None:
        # each part inflates within the budget; the three together do not
        limits = UploadLimits(max_expanded_bytes=int(2.5 * len(CT)))
        body = _multipart([_file_part(_zip(CT), "application/zip") for _ in range(3)])
        with pytest.raises(PayloadTooLarge, match="archives expand beyond the limit"):
            _receive(body, limits)

    def test_the_budget_defaults_to_the_body_cap(self) -> None:
        archive = _zip(CT + b"\0" * 100_000)  # a valid instance padded: compresses far below its size
        limits = UploadLimits(max_body_bytes=len(archive) + 1000)
        with pytest.raises(PayloadTooLarge):
            _receive(Body(archive, "application/zip"), limits)

    def test_archive_members_are_capped_across_parts(self) -> None:
        limits = UploadLimits(max_archive_members=3)
        body = _multipart([_file_part(_zip(CT, CT), "application/zip"), _file_part(_zip(CT, CT), "application/zip")])
        with pytest.raises(InvalidUpload, match="more than 3 files"):
            _receive(body, limits)

    def test_instances_are_capped_across_envelopes(self) -> None:
        body = _multipart([_file_part(CT), _file_part(_zip(CT, CT), "application/zip")])
        with pytest.raises(InvalidUpload, match="3 instances; at most 2"):
            _receive(body, UploadLimits(max_instances=2))


class TestMultipartParts:
    def test_part_count_is_enforced_while_the_body_streams(self) -> None:
        limits = UploadLimits(max_parts=10)
        body = _multipart([_file_part(b"")] * 11 + [_file_part(CT)] * 200)
        with pytest.raises(InvalidUpload, match="more than 10 parts"):
            _receive(body, limits)
        assert body.chunks_read < body.total  # stopped at part 11, not after collecting all 211

    def test_a_part_without_a_body_counts_as_a_part(self) -> None:
        with pytest.raises(InvalidUpload, match="more than 2 parts"):
            _receive(_multipart([_file_part(b""), _file_part(b""), _file_part(CT)]), UploadLimits(max_parts=2))

    def test_part_header_lines_are_capped(self) -> None:
        headers, data = _file_part(CT)
        many = headers + b"".join(b"\r\nX-Extra-%d: v" % i for i in range(10))
        with pytest.raises(InvalidUpload, match="malformed"):
            _receive(_multipart([(many, data)]), UploadLimits(max_part_headers=8))

    def test_a_part_header_line_is_capped(self) -> None:
        headers, data = _file_part(CT)
        with pytest.raises(InvalidUpload, match="malformed"):
            _receive(_multipart([(headers + b"\r\nX-Long: " + b"v" * 5000, data)]), UploadLimits(max_part_header_line_bytes=4096))

    @pytest.mark.parametrize(
        "boundary",
        [
            "x" * 71,  # RFC 2046 allows 70 characters
            "x" * 300,  # python-multipart's own maximum is 256 (it raised outside the parse)
            "b@d",  # '@' is not a boundary character
            "ends-in-space ",  # the last character may not be a space
        ],
    )
    def test_boundaries_outside_rfc_2046_are_400(self, boundary: str) -> None:
        body = Body(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + CT, f'multipart/related; type="application/dicom"; boundary="{boundary}"')
        with pytest.raises(InvalidUpload, match="boundary"):
            _receive(body)

    def test_a_70_character_boundary_is_accepted(self) -> None:
        assert [p.data for p in _receive(_multipart([_file_part(CT)], boundary="'()+_,-./:=? " + "x" * 57))] == [CT]

    def test_a_field_name_that_is_not_utf8_is_400(self) -> None:
        with pytest.raises(InvalidUpload, match="field name of multipart part 0 is not UTF-8"):
            _receive(_multipart([_file_part(CT, name=b"\xff\xfe")]))

    def test_a_filename_that_is_not_utf8_is_read_as_latin1(self) -> None:
        [part] = _receive(_multipart([_file_part(CT, filename=b"M\xfcller.dcm")]))
        assert part.filename == "Müller.dcm"

    @pytest.mark.parametrize(
        "body",
        [
            b"--b0undary\r\nno colon in this header\r\n\r\nxx\r\n--b0undary--\r\n",  # header without a name
            b"--b0undary\r\nContent-Type: application/dicom\r\n\r\nxx\r\n--b0undaryXX",  # broken closing boundary
            b"--b0undary\r\nContent-Type: application/dicom\r\n\r\nxx",  # truncated: no closing boundary
            b"--b0undary\r\n\x00\x01: v\r\n\r\n",  # a header name with control characters
        ],
    )
    def test_what_python_multipart_refuses_is_400(self, body: bytes) -> None:
        with pytest.raises(InvalidUpload, match="malformed"):
            _receive(Body(body, "multipart/form-data; boundary=b0undary"))

    def test_a_body_with_only_a_closing_boundary_holds_nothing(self) -> None:
        with pytest.raises(EmptyBody):
            _receive(Body(b"--b0undary--\r\n", "multipart/form-data; boundary=b0undary"))


class TestBodyCap:
    def test_a_body_over_the_cap_is_refused_while_it_streams(self) -> None:
        body = Body(CT * 20, "application/dicom")
        with pytest.raises(PayloadTooLarge):
            _receive(body, UploadLimits(max_body_bytes=2 * CHUNK))
        assert body.chunks_read == 3

    def test_limits_come_from_the_gateway_settings(self) -> None:
        settings = Settings(max_upload_bytes=1000, max_series_instances=7, max_upload_parts=9, max_archive_members=11)
        limits = UploadLimits.from_settings(settings)
        assert (limits.max_body_bytes, limits.max_instances, limits.max_parts, limits.max_archive_members) == (1000, 7, 9, 11)
        assert limits.expansion_budget_bytes == 1000  # unset: the body cap
