"""The receiver against real peers: dcmtk's ``echoscu`` / ``storescu`` and pynetdicom's
``storescu`` send real CT series, uncompressed and compressed; calling-AE allow-list; resends;
hostile instances answered with a failure status while the receiver stays up; a full disk
refuses associations; complete series handed to the router."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from devtools.dimse_peer import send_file
from dimse.echo import echo
from dimse.server import TRANSFER_SYNTAXES
from jobs.received import COMPLETE

from .conftest import STORESCU, run

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")


def spooled(receiver, series_uid: str) -> list[Path]:  # noqa: ANN001
    return sorted(receiver.server.spool.glob(f"*/{series_uid}/*.dcm"))


def test_dcmtk_echoscu_is_answered(start_receiver) -> None:  # noqa: ANN001
    receiver = start_receiver()
    assert run(["echoscu", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port)]).returncode == 0


def test_dcmtk_storescu_series_is_spooled_recorded_and_completed(start_receiver, ct_series) -> None:  # noqa: ANN001
    receiver = start_receiver(dimse_series_silence_s=0.5)
    files = ct_series("ct", slices=6)
    result = run(["storescu", "-aet", "PACS", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(receiver.port), str(files[0].parent)])
    assert result.returncode == 0, result.stderr
    series_uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    stored = spooled(receiver, series_uid)
    assert len(stored) == 6
    assert sorted(receiver.store.instances_of(series_uid)) == stored
    for sent in files:  # byte-identical data sets: the file written is the one sent
        ds = pydicom.dcmread(sent)
        kept = pydicom.dcmread(receiver.server.spool / ds.StudyInstanceUID / series_uid / f"{ds.SOPInstanceUID}.dcm")
        assert kept.PixelData == ds.PixelData and kept.SOPInstanceUID == ds.SOPInstanceUID
    [series] = receiver.wait_complete(1)
    assert (series.series_uid, series.instances, series.state, series.calling_ae, series.called_ae, series.modality) == (
        series_uid, 6, COMPLETE, "PACS", "MEDSERVE", "CT",
    )
    assert not list((receiver.server.spool / ".incoming").iterdir())


@pytest.mark.parametrize(
    ("option", "syntax"),
    [("-xd", DeflatedExplicitVRLittleEndian), ("-xi", ImplicitVRLittleEndian)],
    ids=["deflated", "implicit"],
)
def test_dcmtk_storescu_transcodes_to_the_native_syntaxes(start_receiver, ct_series, option, syntax) -> None:  # noqa: ANN001
    """dcmtk converts each file to the one syntax it proposes; the receiver keeps what it got."""
    receiver = start_receiver()
    files = ct_series("ct", slices=2)
    result = run(["storescu", option, "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(receiver.port), str(files[0].parent)])
    assert result.returncode == 0, result.stderr
    sent = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, files)}
    stored = spooled(receiver, next(iter(sent.values())).SeriesInstanceUID)
    assert len(stored) == 2
    for path in stored:
        kept = pydicom.dcmread(path)
        assert kept.file_meta.TransferSyntaxUID == syntax
        assert (kept.pixel_array == sent[kept.SOPInstanceUID].pixel_array).all()


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=["rle", "jpeg2000", "jpegls"])
def test_pynetdicom_storescu_sends_compressed_series(start_receiver, ct_series, syntax) -> None:  # noqa: ANN001
    assert syntax in TRANSFER_SYNTAXES
    receiver = start_receiver()
    files = ct_series(f"ct-{syntax.name}", slices=3, transfer_syntax=syntax)
    result = run([str(STORESCU), "-cx", "-r", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port), str(files[0].parent)])
    assert result.returncode == 0, result.stderr
    ds = pydicom.dcmread(files[0])
    stored = spooled(receiver, ds.SeriesInstanceUID)
    assert len(stored) == 3
    assert {str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in stored} == {syntax}


def test_calling_ae_allow_list(start_receiver) -> None:  # noqa: ANN001
    receiver = start_receiver(dimse_allowed_calling_aes=["PACS"])
    assert run(["echoscu", "-aet", "PACS", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port)]).returncode == 0
    refused = run(["echoscu", "-v", "-aet", "INTRUDER", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port)])
    assert refused.returncode != 0
    assert "Rejected Permanent" in refused.stderr and "Calling AE Title Not Recognized" in refused.stderr


def test_a_resent_series_is_acknowledged_and_counted_once(start_receiver, ct_series) -> None:  # noqa: ANN001
    receiver = start_receiver()
    files = ct_series("ct", slices=4)
    command = ["storescu", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(receiver.port), str(files[0].parent)]
    assert run(command).returncode == 0
    assert run(command).returncode == 0
    series_uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    assert receiver.store.series(series_uid).instances == 4
    assert len(spooled(receiver, series_uid)) == 4


def send_raw(port: int, path: Path, sop_class) -> int:  # noqa: ANN001
    """C-STORE the file's bytes as they are, from a peer that is not on the allow-list's mind."""
    return send_file(port, path, sop_class, calling_ae="HOSTILE")


def test_hostile_instances_are_refused_with_a_failure_status_and_the_receiver_stays_up(start_receiver, ct_series, tmp_path) -> None:  # noqa: ANN001
    receiver = start_receiver()
    [good] = ct_series("ct", slices=1)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(data[: len(data) - 4000])  # the pixel data cut short
    assert send_raw(receiver.port, truncated, CTImageStorage) == 0xC001

    mismatched = tmp_path / "mismatched.dcm"  # file meta and command say CT, the data set says MR
    ds = pydicom.dcmread(good)
    ds.SOPClassUID = MRImageStorage
    ds.save_as(mismatched)
    assert send_raw(receiver.port, mismatched, CTImageStorage) == 0xA900

    traversal = tmp_path / "traversal.dcm"  # a series UID that would climb out of the spool
    ds = pydicom.dcmread(good)
    with warnings.catch_warnings():  # pydicom warns (once a process) about the invalid UI value, set and written
        warnings.simplefilter("ignore")
        ds.SeriesInstanceUID = "../../etc"
        ds.save_as(traversal)
    assert send_raw(receiver.port, traversal, CTImageStorage) == 0xC002

    assert echo("127.0.0.1", receiver.port)
    assert send_raw(receiver.port, good, CTImageStorage) == 0x0000
    assert [p.name for p in receiver.server.spool.rglob("*.dcm")] == [f"{pydicom.dcmread(good).SOPInstanceUID}.dcm"]
    assert not list((receiver.server.spool / ".incoming").iterdir())


def test_associations_are_refused_above_the_disk_watermark(start_receiver) -> None:  # noqa: ANN001
    receiver = start_receiver(dimse_disk_watermark=1e-9)  # any used byte is above it
    refused = run(["echoscu", "-v", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port)])
    assert refused.returncode != 0
    assert "Rejected Transient" in refused.stderr and "Temporary Congestion" in refused.stderr
