"""Helpers of the end-to-end tests of the DICOM node."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def running_receiver(work: Path) -> Iterator:
    """The DICOM receiver (``dimse.server.DimseServer``) on a free loopback port over ``work``,
    closing a series 1 s after its last instance and looking every 0.2 s (tests need not wait
    the production 10 s); stopped afterwards, with the pynetdicom and tempfile globals it sets
    put back as they were."""
    from pynetdicom import _config

    from dimse.config import DimseSettings
    from dimse.server import DimseServer

    saved = (_config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir)
    receiver = DimseServer(DimseSettings(work_dir=work, dimse_port=0, dimse_host="127.0.0.1", dimse_series_silence_s=1.0,
                                         dimse_assembly_poll_s=0.2)).start()
    try:
        yield receiver
    finally:
        receiver.stop()
        _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = saved
