"""The fuzz corpus over DIMSE: every mutated data set the HTTP campaign sends as
``application/dicom`` is C-STOREd to the receiver instead, as a PACS would send it.

Over DIMSE a peer sends a data set without its Part 10 file meta, in a transfer syntax agreed
for the association, so the attack surface is the data set's bytes: each case's body is split at
the end of its file meta group (the whole body after the preamble when that does not parse), the
transfer syntax and SOP class kept when its meta names valid ones (else Explicit VR Little Endian
and CT Image Storage), and the bytes are sent unchanged (pynetdicom's chunked send: no
re-encoding). What is checked (:class:`DimseOutcome`): every C-STORE gets a status (a SOP class or
transfer syntax the receiver does not take is refused at association), never a hang or a dropped
association; the receiver answers C-ECHO afterwards;
nothing is left half-written; and every acknowledged instance is in the spool and readable.
"""

from __future__ import annotations

import io
import struct
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.filewriter import write_file_meta_info
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage

from .cases import campaign

#: The families whose bodies are DICOM data sets (the rest attack HTTP envelopes).
DICOM_FAMILIES_PREFIXES = ("binary", "elements", "pixels")


@dataclass
class DimseOutcome:
    """What a DIMSE campaign saw: statuses by value (hex), cases the receiver dropped the
    association on, cases that could not even be put into a C-STORE (file meta unusable), and
    the ids of the acknowledged cases."""

    statuses: Counter = field(default_factory=Counter)
    aborted: list[str] = field(default_factory=list)
    context_refused: int = 0  # SOP class / transfer syntax the receiver does not take: refused at association
    unsendable: int = 0
    acknowledged: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + len(self.aborted) + self.context_refused


def dataset_bytes(body: bytes) -> tuple[bytes, UID, UID]:
    """(data set bytes, transfer syntax, SOP class) of a Part 10 body as a peer would send it;
    a body wrapped in a multipart envelope (STOW-RS, form data) is taken from its first part's
    preamble (what follows it, the envelope's closing lines included, is sent as it is)."""
    marker = body.find(b"DICM", 128)
    if marker > 128:
        body = body[marker - 128 :]
    offset, syntax, sop_class = 0, ExplicitVRLittleEndian, CTImageStorage
    if len(body) >= 132 and body[128:132] == b"DICM":
        offset = 132
        # group 0002 is explicit VR little endian: (0002,0000) UL gives the group's length
        if body[132:136] == b"\x02\x00\x00\x00" and body[136:138] == b"UL":
            group_length = struct.unpack("<I", body[140:144])[0]
            end = 144 + group_length
            if end <= len(body):
                meta = _meta_values(body[144:end])
                syntax = _valid_uid(meta.get((0x0002, 0x0010)), syntax)
                sop_class = _valid_uid(meta.get((0x0002, 0x0002)), sop_class)
                offset = end
    return body[offset:], syntax, sop_class


def _meta_values(data: bytes) -> dict[tuple[int, int], bytes]:
    """The elements of an explicit VR little endian group 0002 (short and long VRs)."""
    values, i = {}, 0
    while i + 8 <= len(data):
        group, element = struct.unpack("<HH", data[i : i + 4])
        vr = data[i + 4 : i + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL", b"OV"):
            if i + 12 > len(data):
                break
            length, start = struct.unpack("<I", data[i + 8 : i + 12])[0], i + 12
        else:
            length, start = struct.unpack("<H", data[i + 6 : i + 8])[0], i + 8
        values[(group, element)] = data[start : start + length]
        i = start + length
    return values


def _valid_uid(raw: bytes | None, default: UID) -> UID:
    if raw is None:
        return default
    text = raw.rstrip(b"\x00 ").decode("ascii", "replace")
    uid = UID(text)
    return uid if uid.is_valid and len(text) <= 64 else default


def _instance_uid(body: bytes) -> UID:
    """The data set's own (0008,0018) SOP Instance UID where pydicom can read it: the C-STORE
    request names it, and a receiver compares the two."""
    try:
        value = dcmread(io.BytesIO(body), stop_before_pixels=True, force=True).get("SOPInstanceUID")
        uid = UID(str(value)) if value else None
    except Exception:  # noqa: BLE001 - a body pydicom cannot read is sent all the same
        uid = None
    return uid if uid is not None and uid.is_valid else UID("1.2.3.4")


def _as_file(data: bytes, syntax: UID, sop_class: UID, instance: UID, folder: Path, name: str) -> Path:
    """A Part 10 file with a valid meta in front of ``data``, for pynetdicom's raw send."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    path = folder / f"{name}.dcm"
    path.write_bytes(buffer.getvalue() + data)
    return path


def run_dimse_campaign(port: int, cases: int, seed: int = 0, ae_title: str = "MEDSERVE", timeout_s: float = 30.0) -> DimseOutcome:
    """C-STORE the DICOM bodies of the first ``cases`` cases of the campaign (the DICOM
    families only), one association each, to a receiver on 127.0.0.1:``port``."""
    from .families import FAMILIES

    families = sorted(name for name in FAMILIES if FAMILIES[name].__module__.rsplit(".", 1)[-1] in DICOM_FAMILIES_PREFIXES)
    outcome = DimseOutcome()
    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title="FUZZER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    try:
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for case in campaign(cases, seed, families):
                if case.request.body[:4] == b"PK\x03\x04" or not case.request.body:
                    outcome.unsendable += 1
                    continue
                data, syntax, sop_class = dataset_bytes(case.request.body)
                path = _as_file(data, syntax, sop_class, _instance_uid(case.request.body), Path(folder), case.id.replace(":", "_"))
                ae.requested_contexts = []
                ae.add_requested_context(sop_class, syntax)
                assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
                if not assoc.is_established:
                    if assoc.rejected_contexts and not assoc.accepted_contexts:
                        outcome.context_refused += 1
                    else:
                        outcome.aborted.append(case.id)
                    continue
                try:
                    status = assoc.send_c_store(path)
                except Exception:  # noqa: BLE001 - pynetdicom refusing to send it is the sender's limit, not the receiver's
                    outcome.unsendable += 1
                    assoc.abort()
                    continue
                if status and "Status" in status:
                    outcome.statuses[f"0x{status.Status:04X}"] += 1
                    if status.Status == 0x0000:
                        outcome.acknowledged.append(case.id)
                    assoc.release()
                else:
                    outcome.aborted.append(case.id)
                    assoc.abort()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved
    return outcome
