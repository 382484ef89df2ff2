"""Series assembly in the running receiver: a series closes when it holds the count its headers
announce (without waiting for the silence), and a receiver started over the work directory of
one that stopped closes the series that one left open, from the timers in the store."""

from __future__ import annotations

import shutil
import time

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from jobs.received import COMPLETE, RECEIVING

from .conftest import run

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")


def test_a_series_closes_at_its_expected_count(start_receiver, ct_series) -> None:  # noqa: ANN001
    receiver = start_receiver(dimse_series_silence_s=3600, dimse_series_max_age_s=3600)
    files = ct_series("ct", slices=3)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.ImagesInAcquisition = 3  # (0020,1002): one acquisition of three images
        ds.save_as(path)
    assert run(["storescu", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(receiver.port), str(files[0].parent)]).returncode == 0
    [series] = receiver.wait_complete(1)
    assert (series.instances, series.expected_instances, series.state) == (3, 3, COMPLETE)


def test_a_restarted_receiver_closes_what_the_stopped_one_left_open(start_receiver, ct_series) -> None:  # noqa: ANN001
    first = start_receiver(dimse_series_silence_s=1.5)
    files = ct_series("ct", slices=2)
    assert run(["storescu", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(first.port), str(files[0].parent)]).returncode == 0
    first.server.stop()
    series_uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    assert first.completed == [] and first.store.series(series_uid).state == RECEIVING
    time.sleep(1.5)  # the silence passes while no receiver runs
    second = start_receiver(dimse_series_silence_s=1.5)
    [series] = second.wait_complete(1)
    assert (series.series_uid, series.instances, series.state) == (series_uid, 2, COMPLETE)


def test_associations_beyond_the_maximum_are_refused_transiently(start_receiver) -> None:  # noqa: ANN001
    receiver = start_receiver(dimse_max_associations=1)
    ae = AE(ae_title="HOLDER")
    ae.add_requested_context(Verification)
    held = ae.associate("127.0.0.1", receiver.port, ae_title="MEDSERVE")
    assert held.is_established
    try:
        refused = run(["echoscu", "-v", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port)])
        assert refused.returncode != 0
        assert "Rejected Transient" in refused.stderr and "Local Limit Exceeded" in refused.stderr
    finally:
        held.release()
    assert run(["echoscu", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port)]).returncode == 0
