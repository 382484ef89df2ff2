"""A DICOM peer for tests and benches: C-STORE a file's bytes exactly as they are."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pynetdicom import AE, _config


def send_file(port: int, path: Path, sop_class: str, *, calling_ae: str = "PACS", called_ae: str = "MEDSERVE", host: str = "127.0.0.1") -> int:
    """C-STORE ``path``'s data set unchanged (pynetdicom's chunked send: no re-encoding) in
    its own transfer syntax under ``sop_class``, one association; the status answered."""
    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        ae = AE(ae_title=calling_ae)
        ae.add_requested_context(sop_class, pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        assoc = ae.associate(host, port, ae_title=called_ae)
        assert assoc.is_established, f"{called_ae} at {host}:{port} refused the association"
        try:
            return assoc.send_c_store(path).Status
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved
