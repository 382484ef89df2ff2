"""The C-STORE / C-ECHO SCP of the DICOM node, and the thread that closes complete series.

:class:`DimseServer` is a pynetdicom AE serving, on ``MEDSERVE_DIMSE_PORT``:

* C-ECHO (Verification);
* C-STORE for :data:`STORAGE_CLASSES` (the images models take) in :data:`TRANSFER_SYNTAXES`
  (the native encodings, deflate, and every compressed syntax a pydicom decoder is installed
  for: RLE, JPEG baseline / extended / lossless, JPEG-LS, JPEG 2000, HTJ2K); each instance goes
  through :func:`dimse.spool.store_instance` (durable, recorded, then success);
* association refusals: a calling AE not on the allow-list (A-ASSOCIATE-RJ permanent, calling
  AE not recognised), more than ``max_associations`` (transient, local limit exceeded), the
  spool's filesystem used beyond ``disk_watermark`` (transient, temporary congestion).

The assembler thread asks the store every ``assembly_poll_s`` which series are due
(:meth:`jobs.received.ReceivedStore.due_series`), marks each ``complete`` (one receiver wins
when several share the store) and calls ``on_series_complete(record)``, by default a log line.
Logs carry AE titles, statuses, reasons and counts, never a DICOM value (a series appears as a
short hash of its UID).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, _config, evt
from pynetdicom import sop_class as sop
from sqlalchemy.exc import SQLAlchemyError

from jobs.db import database_url, make_engine
from jobs.received import COMPLETE, RECEIVING, ReceivedStore, SeriesRecord

from .config import DimseSettings
from .metrics import ReceiverMetrics, rejection_reason
from .spool import disk_used_fraction, incoming_dir, store_instance, sweep_incoming

__all__ = ["STORAGE_CLASSES", "TRANSFER_SYNTAXES", "DimseServer", "series_ref"]

logger = logging.getLogger("medserve.dimse")

#: Storage SOP classes of the images models take: cross-sectional (CT, MR, PET, NM and their
#: enhanced / legacy-converted multi-frame forms), projection X-ray (CR, DX, MG, tomosynthesis,
#: XA, RF), ultrasound, secondary capture.
STORAGE_CLASSES: tuple[UID, ...] = tuple(
    UID(getattr(sop, name))
    for name in (
        "CTImageStorage", "EnhancedCTImageStorage", "LegacyConvertedEnhancedCTImageStorage",
        "MRImageStorage", "EnhancedMRImageStorage", "EnhancedMRColorImageStorage", "LegacyConvertedEnhancedMRImageStorage",
        "PositronEmissionTomographyImageStorage", "EnhancedPETImageStorage", "LegacyConvertedEnhancedPETImageStorage",
        "NuclearMedicineImageStorage",
        "ComputedRadiographyImageStorage",
        "DigitalXRayImageStorageForPresentation", "DigitalXRayImageStorageForProcessing",
        "DigitalMammographyXRayImageStorageForPresentation", "DigitalMammographyXRayImageStorageForProcessing",
        "BreastTomosynthesisImageStorage",
        "XRayAngiographicImageStorage", "EnhancedXAImageStorage", "XRayRadiofluoroscopicImageStorage",
        "UltrasoundImageStorage", "UltrasoundMultiFrameImageStorage",
        "SecondaryCaptureImageStorage", "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleWordSecondaryCaptureImageStorage", "MultiFrameTrueColorSecondaryCaptureImageStorage",
    )
)


def _decodable(syntax: UID) -> bool:
    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:
        return False


#: The native encodings (deflate inflated by the reader) and every compressed syntax whose
#: pydicom decoder is installed in this environment: the decoders the job will use.
TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
) + tuple(UID(s) for s in AllTransferSyntaxes if UID(s).is_compressed and _decodable(UID(s)))

#: A-ASSOCIATE-RJ (result, source, reason) of a full spool: rejected-transient, DUL service
#: provider (presentation related), temporary congestion (PS3.8 9.3.4).
_DISK_FULL_REJECT = (0x02, 0x03, 0x01)


def series_ref(series_uid: str) -> str:
    """A short, stable reference to a series for logs (a UID is not logged as such)."""
    return hashlib.sha256(series_uid.encode()).hexdigest()[:12]


def log_complete(record: SeriesRecord) -> None:
    """The default ``on_series_complete``: one log line."""
    logger.info(
        "series complete",
        extra={"series": series_ref(record.series_uid), "instances": record.instances, "modality": record.modality},
    )


class DimseServer:
    """The receiver: :meth:`start` binds the port and starts the assembler, :meth:`stop` ends
    both (associations in progress are aborted; their unacknowledged instances are resent by
    the peer)."""

    def __init__(
        self,
        settings: DimseSettings,
        on_series_complete: Callable[[SeriesRecord], None] = log_complete,
        store: ReceivedStore | None = None,
    ) -> None:
        self.settings = settings
        self.on_series_complete = on_series_complete
        self.spool = Path(settings.spool_dir).resolve()
        self._store = store
        self._server = None
        self._stop = threading.Event()
        self._assembler: threading.Thread | None = None
        self.metrics = ReceiverMetrics(self.spool, active=lambda: len(self._server.active_associations) if self._server is not None else 0)

    @property
    def store(self) -> ReceivedStore:
        if self._store is None:
            self._store = ReceivedStore(make_engine(database_url(self.settings.work_dir, self.settings.database_url)))
        return self._store

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the kernel's choice for port 0)."""
        return self._server.server_address[1] if self._server is not None else self.settings.dimse_port

    def start(self) -> "DimseServer":
        incoming = incoming_dir(self.spool)
        incoming.mkdir(parents=True, exist_ok=True)
        swept = sweep_incoming(self.spool)  # partial files of a receiver that died: never acknowledged
        store = self.store
        # pynetdicom streams each data set into a NamedTemporaryFile; created on the spool's
        # filesystem they can be renamed into the spool without a copy.
        _config.STORE_RECV_CHUNKED_DATASET = True
        tempfile.tempdir = str(incoming)
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines quote identifiers
        ae = AE(ae_title=self.settings.dimse_ae_title)
        ae.maximum_associations = self.settings.dimse_max_associations
        ae.maximum_pdu_size = self.settings.dimse_max_pdu_bytes
        ae.network_timeout = self.settings.dimse_network_timeout_s
        ae.require_calling_aet = list(self.settings.dimse_allowed_calling_aes)
        ae.add_supported_context(sop.Verification)
        for storage in STORAGE_CLASSES:
            ae.add_supported_context(storage, list(TRANSFER_SYNTAXES))
        handlers = [
            (evt.EVT_C_STORE, self._on_store), (evt.EVT_REQUESTED, self._on_requested), (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_ACCEPTED, self._on_accepted),
        ]
        self._server = ae.start_server((self.settings.dimse_host, self.settings.dimse_port), block=False, evt_handlers=handlers)
        self._stop.clear()
        self._assembler = threading.Thread(target=self._assemble_forever, name="dimse-assembler", daemon=True)
        self._assembler.start()
        logger.info(
            "dimse receiver listening",
            extra={"ae_title": self.settings.dimse_ae_title, "port": self.port, "partial_files_removed": swept, "store": store.engine.dialect.name},
        )
        return self

    def stop(self) -> None:
        """Stop serving and assembling; may be called any number of times."""
        self._stop.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
        if self._assembler is not None:
            self._assembler.join(timeout=10)

    def healthy(self) -> bool:
        """Whether it serves associations and its assembler runs (the liveness of ``/healthz``)."""
        server, assembler = self._server, self._assembler
        return server is not None and not self._stop.is_set() and assembler is not None and assembler.is_alive()

    def __enter__(self) -> "DimseServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- associations -------------------------------------------------------------------

    def _on_requested(self, event: evt.Event) -> None:
        try:
            full = disk_used_fraction(self.spool) > self.settings.dimse_disk_watermark
        except OSError:
            full = True
        if full:
            logger.warning("association refused: spool above its disk watermark", extra={"calling_ae": _ae(event.assoc.requestor.ae_title)})
            event.assoc.acse.send_reject(*_DISK_FULL_REJECT)
            self.metrics.associations.labels(rejection_reason(*_DISK_FULL_REJECT[1:])).inc()
            event.assoc.kill()  # as pynetdicom's own rejections: the A-ASSOCIATE-RJ is sent before the socket closes

    def _on_accepted(self, event: evt.Event) -> None:
        self.metrics.associations.labels("accepted").inc()

    def _on_rejected(self, event: evt.Event) -> None:
        rejection = event.assoc.acceptor.primitive
        self.metrics.associations.labels(rejection_reason(getattr(rejection, "result_source", None), getattr(rejection, "diagnostic", None))).inc()
        logger.info("association rejected", extra={"calling_ae": _ae(event.assoc.requestor.ae_title)})

    def _on_store(self, event: evt.Event) -> int:
        request = event.request
        try:
            size = os.path.getsize(event.dataset_path)
        except OSError:
            size = 0
        outcome = store_instance(
            Path(event.dataset_path),
            spool=self.spool,
            store=self.store,
            sop_class_uid=str(request.AffectedSOPClassUID),
            sop_instance_uid=str(request.AffectedSOPInstanceUID),
            calling_ae=_ae(event.assoc.requestor.ae_title),
            called_ae=_ae(event.assoc.acceptor.ae_title),
        )
        if outcome.success:
            self.metrics.stored(outcome.reason, size)
        else:
            self.metrics.instances_refused.labels(outcome.reason).inc()
            logger.warning(
                "instance refused",
                extra={"status": f"0x{outcome.status:04X}", "reason": outcome.reason, "calling_ae": _ae(event.assoc.requestor.ae_title)},
            )
        return outcome.status

    # -- assembly -----------------------------------------------------------------------

    def _assemble_forever(self) -> None:
        while not self._stop.wait(self.settings.dimse_assembly_poll_s):
            try:
                self.close_due_series()
                sweep_incoming(self.spool, self.settings.dimse_incoming_stale_s)
            except (SQLAlchemyError, OSError) as exc:
                logger.error("series assembly failed; retrying", extra={"error": type(exc).__name__})

    def close_due_series(self, now: dt.datetime | None = None) -> list[SeriesRecord]:
        """Mark every due series complete and hand it to ``on_series_complete``; those closed."""
        now = now or dt.datetime.now(dt.timezone.utc)
        closed = []
        for due in self.store.due_series(now, self.settings.dimse_series_silence_s, self.settings.dimse_series_max_age_s):
            if not self.store.mark(due.series_uid, COMPLETE, expected=RECEIVING):
                continue  # another receiver closed it, or an instance reopened it meanwhile
            record = self.store.series(due.series_uid) or due
            closed.append(record)
            self.metrics.series_completed.inc()
            try:
                self.on_series_complete(record)
            except Exception as exc:  # the callback is the router's; its failure must not stop assembly
                logger.error("on_series_complete failed", extra={"series": series_ref(record.series_uid), "error": type(exc).__name__})
        return closed


def _ae(title: str | bytes) -> str:
    return (title.decode("ascii", "replace") if isinstance(title, bytes) else str(title)).strip()
