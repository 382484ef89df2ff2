"""ZIP archives are inflated under one budget per request: bytes actually inflated and members
counted, whatever the archive declares; malformed members are refused by index, never by name."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from gateway.archives import CHUNK_BYTES, ExpansionBudget, dicom_members
from gateway.errors import InvalidUpload, PayloadTooLarge
from devtools.testdata import pydicom_test_file

CT = pydicom_test_file("CT_small.dcm").read_bytes()
MR = pydicom_test_file("MR_small.dcm").read_bytes()
PHI_NAME = "DOE^JANE_1970-01-01.dcm"  # hospital archives name files after patients


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", method) as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return archive.getvalue()


def _zero_filled_dicom(size: int) -> bytes:
    """A Part 10 preamble and magic followed by zeros: inflates ~1000:1 under deflate."""
    return b"\0" * 128 + b"DICM" + b"\0" * (size - 132)


def _budget(max_bytes: int = 1 << 30, max_members: int = 1000) -> ExpansionBudget:
    return ExpansionBudget(max_bytes, max_members)


def _overlapping_bomb(copies: int, size: int) -> bytes:
    """One compressed member referenced by ``copies`` central-directory entries (the
    overlapping-entry ZIP bomb): each entry inflates the same data again."""
    single = _zip({"a.dcm": _zero_filled_dicom(size)})
    eocd_at = single.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", single[eocd_at + 12 : eocd_at + 20])
    entry = single[cd_offset : cd_offset + cd_size]
    eocd = bytearray(single[eocd_at:])
    struct.pack_into("<HHII", eocd, 8, copies, copies, cd_size * copies, cd_offset)
    return single[:cd_offset] + entry * copies + bytes(eocd)


def _set_declared_size(archive: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size the central directory declares for its only member."""
    patched = bytearray(archive)
    struct.pack_into("<I", patched, patched.rindex(b"PK\x01\x02") + 24, size)
    return bytes(patched)


class TestDicomMembers:
    def test_dicom_members_are_returned_and_the_rest_skipped(self) -> None:
        archive = _zip({"study/": b"", "study/1.dcm": CT, "study/2.dcm": MR, "README.txt": b"notes", "DICOMDIR": CT})
        members = dicom_members(archive, budget := _budget())
        assert [m.data for m in members] == [CT, MR]
        assert [m.index for m in members] == [1, 2]
        assert budget.members == 4  # files, DICOM or not; the folder does not count
        assert budget.inflated_bytes == len(CT) + len(MR) + len(b"notes")  # the rest of DICOMDIR is never read

    def test_stored_members_are_read(self) -> None:
        assert [m.data for m in dicom_members(_zip({"1.dcm": CT}, zipfile.ZIP_STORED), _budget())] == [CT]

    def test_a_nested_archive_is_not_expanded(self) -> None:
        assert dicom_members(_zip({"inner.zip": _zip({"1.dcm": CT})}), _budget()) == []


class TestArchiveOrder:
    """What comes back, what is charged and what is refused is what one reader going through the
    archive in order gives."""

    def test_members_come_back_in_archive_order(self) -> None:
        series = {f"series/{k:03d}.dcm": CT[:-k] if k else CT for k in range(40)}
        members = dicom_members(_zip(series), budget := _budget())
        assert [(m.name, m.data) for m in members] == list(series.items())
        assert [m.index for m in members] == list(range(40))
        assert budget.inflated_bytes == sum(map(len, series.values()))

    def test_the_first_corrupt_member_in_archive_order_is_the_one_refused(self) -> None:
        archive = bytearray(_zip({f"{k}.dcm": CT for k in range(8)}))
        for k in (6, 3):
            data_at = archive.index(f"{k}.dcm".encode()) + 5 + 16
            archive[data_at : data_at + 64] = b"\xff" * 64
        with pytest.raises(InvalidUpload, match=r"ZIP member 3 cannot be read"):
            dicom_members(bytes(archive), _budget())

    def test_a_member_over_the_budget_is_refused_before_a_later_corrupt_one(self) -> None:
        archive = bytearray(_zip({"0.dcm": CT, "bomb.dcm": _zero_filled_dicom(64 * CHUNK_BYTES), "2.dcm": CT}))
        data_at = archive.index(b"2.dcm") + 5 + 16
        archive[data_at : data_at + 64] = b"\xff" * 64
        with pytest.raises(PayloadTooLarge):
            dicom_members(bytes(archive), _budget(max_bytes=4 * CHUNK_BYTES))

    def test_members_inflated_ahead_stay_within_the_budget(self) -> None:
        # 64 members of 1 MiB each against a budget of 10: refused, having kept at most one
        # chunk past it
        budget = _budget(max_bytes=10 * CHUNK_BYTES)
        with pytest.raises(PayloadTooLarge):
            dicom_members(_zip({f"{k}.dcm": _zero_filled_dicom(CHUNK_BYTES) for k in range(64)}), budget)
        assert budget.inflated_bytes <= 11 * CHUNK_BYTES + 132


class TestBudget:
    def test_one_budget_spans_several_archives(self) -> None:
        budget = _budget(max_bytes=int(2.5 * len(CT)))
        dicom_members(_zip({"1.dcm": CT}), budget)
        dicom_members(_zip({"2.dcm": CT}), budget)
        with pytest.raises(PayloadTooLarge, match="expand beyond the limit"):
            dicom_members(_zip({"3.dcm": CT}), budget)

    def test_inflation_stops_at_the_first_chunk_beyond_the_budget(self) -> None:
        budget = _budget(max_bytes=4 * CHUNK_BYTES)
        with pytest.raises(PayloadTooLarge):
            dicom_members(_zip({"bomb.dcm": _zero_filled_dicom(64 * CHUNK_BYTES)}), budget)
        assert budget.inflated_bytes <= 5 * CHUNK_BYTES + 132

    @pytest.mark.parametrize("declared_bytes", [1024, 0])
    def test_the_declared_size_is_not_trusted(self, declared_bytes: int) -> None:
        # declares 1 KiB (or nothing) and inflates to 64 MiB: read no further than declared,
        # then refused by its CRC-32
        archive = _set_declared_size(_zip({"bomb.dcm": _zero_filled_dicom(64 * CHUNK_BYTES)}), declared_bytes)
        with pytest.raises(InvalidUpload, match="ZIP member 0 cannot be read"):
            dicom_members(archive, budget := _budget())
        assert budget.inflated_bytes <= declared_bytes

    def test_overlapping_entries_are_charged_each_time_they_inflate(self) -> None:
        budget = _budget(max_bytes=10 * CHUNK_BYTES)
        # Python 3.11 reads overlapping entries, the budget stops them; 3.12+ refuses them on sight
        with pytest.raises((PayloadTooLarge, InvalidUpload)):
            dicom_members(_overlapping_bomb(copies=100, size=2 * CHUNK_BYTES), budget)
        assert budget.inflated_bytes <= 11 * CHUNK_BYTES + 132

    def test_member_count_is_capped_across_archives(self) -> None:
        budget = _budget(max_members=3)
        dicom_members(_zip({"1.dcm": CT, "2.dcm": CT}), budget)
        with pytest.raises(InvalidUpload, match="more than 3 files"):
            dicom_members(_zip({"3.dcm": CT, "4.dcm": CT}), budget)

    def test_a_central_directory_with_more_entries_than_allowed_is_not_parsed(self) -> None:
        budget = _budget(max_members=10)
        with pytest.raises(InvalidUpload, match="more than 10 files"):
            dicom_members(_zip({f"{i}.txt": b"" for i in range(11)}), budget)
        assert budget.members == 0  # refused from the signatures alone


class TestMalformedMembers:
    def test_corrupt_deflate_data_is_refused_by_member_index(self) -> None:
        archive = bytearray(_zip({"ok.dcm": CT, PHI_NAME: CT}))
        data_at = archive.index(PHI_NAME.encode()) + len(PHI_NAME) + 16
        archive[data_at : data_at + 64] = b"\xff" * 64
        with pytest.raises(InvalidUpload, match=r"ZIP member 1 cannot be read \(zlib\.error\)") as refused:
            dicom_members(bytes(archive), _budget())
        assert "DOE" not in refused.value.message

    def test_a_bad_crc_is_refused(self) -> None:
        archive = bytearray(_zip({PHI_NAME: CT}, zipfile.ZIP_STORED))
        archive[archive.index(CT) + 1000] ^= 0xFF
        with pytest.raises(InvalidUpload, match=r"ZIP member 0 cannot be read \(zipfile\.BadZipFile\)") as refused:
            dicom_members(bytes(archive), _budget())
        assert "DOE" not in refused.value.message

    def test_an_encrypted_member_is_refused(self) -> None:
        archive = bytearray(_zip({"1.dcm": CT}))
        for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            archive[archive.index(signature) + flags_at] |= 0x1
        with pytest.raises(InvalidUpload, match="ZIP member 0 is encrypted"):
            dicom_members(bytes(archive), _budget())

    @pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
    def test_compression_without_an_output_bound_is_refused(self, method: int) -> None:
        with pytest.raises(InvalidUpload, match=f"ZIP member 0 uses compression method {method}"):
            dicom_members(_zip({"1.dcm": CT}, method), _budget())

    @pytest.mark.parametrize(
        "body",
        [
            b"PK\x03\x04 not really a zip",  # a local header and nothing else
            _zip({"1.dcm": CT})[:-30],  # truncated end of central directory
            b"",  # nothing
        ],
    )
    def test_what_is_not_a_zip_is_refused(self, body: bytes) -> None:
        with pytest.raises(InvalidUpload, match="not a valid ZIP archive"):
            dicom_members(body, _budget())
