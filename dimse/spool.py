"""The spool: where a received instance becomes durable before the sender hears success.

pynetdicom streams each C-STORE data set into a file as it arrives (its
``STORE_RECV_CHUNKED_DATASET`` mode, so a 2 GB enhanced MR never sits in memory); the receiver
has those files created in ``<spool>/.incoming/`` (:func:`incoming_dir`), on the spool's own
filesystem, so that they are the partial files: never counted, swept at start and when stale.
:func:`store_instance` then takes one such file through these steps, in this order:

1. header check: medserve's own reader (:func:`preprocessing.open_instance`, under the
   process's :mod:`preprocessing.limits`) must parse it, the pixel description must fit the
   pixel data present, and its SOP Class / Instance UIDs must be those of the C-STORE request;
   pixels are never decoded here (that happens in the job, through the decoder pool);
2. ``fsync`` of the file, atomic rename to ``<spool>/<study>/<series>/<sop>.dcm``, ``fsync``
   of that directory (and of any directory just created, in its parent);
3. the record in the job store (:meth:`jobs.received.ReceivedStore.record_instance`, one
   transaction);
4. only then the success status, 0x0000.

Any failure answers a DIMSE failure status (:class:`Outcome`) and leaves no file behind. A
resend of a recorded SOP Instance UID is answered success and not written again. UIDs become
path components only when they are well-formed UIDs (digits and dots, at most 64 characters).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from jobs.received import ReceivedStore
from preprocessing import open_instance
from preprocessing.attributes import header_value
from preprocessing.errors import MissingPixelData, PreprocessingError
from preprocessing.limits import current_limits

__all__ = [
    "INCOMING",
    "Outcome",
    "disk_used_fraction",
    "fsync_directory",
    "incoming_dir",
    "store_instance",
    "sweep_incoming",
]

#: The folder of partial files under the spool (a name no UID can take).
INCOMING = ".incoming"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*\Z")


@dataclass(frozen=True)
class Outcome:
    """The C-STORE status answered and why (a stable label for logs and metrics; never a
    DICOM value)."""

    status: int
    reason: str

    @property
    def success(self) -> bool:
        return self.status == 0x0000


STORED = Outcome(0x0000, "stored")
DUPLICATE = Outcome(0x0000, "duplicate")
#: Out of resources (PS3.4 C.4.2.1.4 0xA7xx): the spool could not be written.
SPOOL_FAILED = Outcome(0xA700, "spool_write_failed")
#: Out of resources: the job store could not record the instance.
STORE_FAILED = Outcome(0xA701, "job_store_failed")
#: Data set does not match SOP class (0xA9xx): UIDs differ from the request, or no pixel data.
SOP_MISMATCH = Outcome(0xA900, "dataset_does_not_match_sop_class")
NO_PIXEL_DATA = Outcome(0xA901, "no_pixel_data")
#: Cannot understand (0xCxxx): not readable DICOM, truncated, or beyond the input limits.
UNREADABLE = Outcome(0xC001, "unreadable_dicom")
#: Cannot understand: a Study / Series / SOP Instance UID missing or not a UID.
BAD_UID = Outcome(0xC002, "invalid_uid")


def incoming_dir(spool: Path) -> Path:
    return Path(spool) / INCOMING


def store_instance(
    incoming: Path,
    *,
    spool: Path,
    store: ReceivedStore,
    sop_class_uid: str,
    sop_instance_uid: str,
    calling_ae: str,
    called_ae: str,
) -> Outcome:
    """Make the received file ``incoming`` durable and recorded, or remove it; the C-STORE
    status to answer. ``sop_class_uid`` / ``sop_instance_uid`` are the request's Affected SOP
    Class / Instance UIDs."""
    outcome = _store(incoming, Path(spool), store, sop_class_uid, sop_instance_uid, calling_ae, called_ae)
    if outcome is not STORED:
        incoming.unlink(missing_ok=True)  # a failure or a resend leaves nothing behind
    return outcome


def _store(
    incoming: Path, spool: Path, store: ReceivedStore, sop_class_uid: str, sop_instance_uid: str, calling_ae: str, called_ae: str
) -> Outcome:
    try:
        header = open_instance(incoming).header
    except MissingPixelData:
        return NO_PIXEL_DATA
    except PreprocessingError:
        return UNREADABLE
    sop_class, sop, study, series = (
        str(header_value(header, keyword, "")).strip()
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
    )
    if sop_class != sop_class_uid.strip() or sop != sop_instance_uid.strip():
        return SOP_MISMATCH
    if not all(len(uid) <= 64 and _UID.match(uid) for uid in (sop, study, series)):
        return BAD_UID
    final = spool / study / series / f"{sop}.dcm"
    try:  # a resend: its file is there (a cheap test first, the store only then)
        if final.exists() and store.has_instance(sop):
            return DUPLICATE
    except SQLAlchemyError:
        return STORE_FAILED
    try:
        size = _durable_rename(incoming, final)
    except OSError:
        final.unlink(missing_ok=True)  # not durable, not recorded: gone
        return SPOOL_FAILED
    try:
        store.record_instance(
            sop_instance_uid=sop, series_uid=series, study_uid=study, path=final, size_bytes=size,
            calling_ae=calling_ae, called_ae=called_ae, transfer_syntax=str(header.file_meta.TransferSyntaxUID),
            modality=_text(header, "Modality"), body_part=_text(header, "BodyPartExamined"),
            series_description=_text(header, "SeriesDescription"), expected_instances=_expected(header),
        )
    except SQLAlchemyError:
        final.unlink(missing_ok=True)  # not recorded: not acknowledged, the sender sends it again
        return STORE_FAILED
    return STORED


def _durable_rename(incoming: Path, final: Path) -> int:
    """fsync ``incoming``, rename it to ``final`` atomically, fsync the directories whose
    entries changed; its size in bytes."""
    with open(incoming, "rb") as file:  # pynetdicom's writer flushed; fsync covers every descriptor
        os.fsync(file.fileno())
        size = os.fstat(file.fileno()).st_size
    created = _make_dirs(final.parent)
    os.replace(incoming, final)
    fsync_directory(final.parent)
    for directory in created:
        fsync_directory(directory.parent)
    return size


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and missing parents; the ones created, deepest first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return missing


def fsync_directory(directory: Path) -> None:
    """fsync a directory, so that a rename or creation in it survives a power cut."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _text(header, keyword: str) -> str | None:  # noqa: ANN001 - pydicom Dataset
    value = header_value(header, keyword)
    return None if value is None else str(value)


def _expected(header) -> int | None:  # noqa: ANN001
    """(0020,1209) Number of Series Related Instances, else (0020,1002) Images in Acquisition,
    when it is a count between 1 and the largest series accepted."""
    for keyword in ("NumberOfSeriesRelatedInstances", "ImagesInAcquisition"):
        try:
            count = int(header_value(header, keyword))
        except (TypeError, ValueError, OverflowError):
            continue
        if 1 <= count <= current_limits().max_instances:
            return count
    return None


def sweep_incoming(spool: Path, older_than_s: float = 0.0) -> int:
    """Remove partial files of the incoming folder not written for ``older_than_s`` seconds
    (0: all of them, at start, before any association); how many were removed."""
    folder = incoming_dir(spool)
    removed = 0
    cutoff = time.time() - older_than_s
    for path in folder.glob("*") if folder.is_dir() else ():
        try:
            if older_than_s <= 0 or path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def disk_used_fraction(spool: Path) -> float:
    """Used fraction of the filesystem that holds the spool (0..1)."""
    usage = shutil.disk_usage(spool)
    return (usage.total - usage.free) / usage.total if usage.total else 1.0
