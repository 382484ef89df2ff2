"""The receiver's metrics, driven by real peers (dcmtk's ``echoscu`` / ``storescu``): associations
by outcome, instances received and refused by reason, bytes, spool size and free disk (against
``shutil.disk_usage``), series completed; served with ``/healthz`` over HTTP."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request

import pydicom
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pynetdicom.sop_class import CTImageStorage

from dimse.metrics import rejection_reason, serve_metrics, spool_bytes

from .conftest import run
from .test_server import send_raw

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")


def value(receiver, name: str, **labels: str) -> float:  # noqa: ANN001
    return receiver.server.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_stored_series_counts_association_instances_bytes_spool_and_completion(start_receiver, ct_series) -> None:  # noqa: ANN001
    receiver = start_receiver(dimse_series_silence_s=0.3)
    files = ct_series("ct", slices=3)
    command = ["storescu", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(receiver.port), str(files[0].parent)]
    assert run(command).returncode == 0
    receiver.wait_complete(1)
    stored = sorted(receiver.server.spool.rglob("*.dcm"))
    assert len(stored) == 3
    written = sum(path.stat().st_size for path in stored)
    assert value(receiver, "medserve_dimse_associations_total", outcome="accepted") == 1
    assert value(receiver, "medserve_dimse_instances_received_total", outcome="stored") == 3
    assert value(receiver, "medserve_dimse_received_bytes_total") == written
    assert value(receiver, "medserve_dimse_spool_bytes") == written == spool_bytes(receiver.server.spool)
    assert value(receiver, "medserve_dimse_series_completed_total") == 1

    assert run(command).returncode == 0  # a resend: acknowledged, counted as duplicates, no new bytes
    assert value(receiver, "medserve_dimse_instances_received_total", outcome="duplicate") == 3
    assert value(receiver, "medserve_dimse_received_bytes_total") == written
    assert value(receiver, "medserve_dimse_associations_total", outcome="accepted") == 2


def test_spool_bytes_follow_removals_at_the_next_walk(start_receiver, ct_series) -> None:  # noqa: ANN001
    receiver = start_receiver()
    files = ct_series("ct", slices=2)
    assert run(["storescu", "-aec", "MEDSERVE", "+sd", "127.0.0.1", str(receiver.port), str(files[0].parent)]).returncode == 0
    assert value(receiver, "medserve_dimse_spool_bytes") > 0
    series = pydicom.dcmread(files[0])
    shutil.rmtree(receiver.server.spool / series.StudyInstanceUID)  # as the router removes an unrouted series
    receiver.server.metrics._gauges.walk_every_s = 0  # the next scrape walks again
    assert value(receiver, "medserve_dimse_spool_bytes") == 0


def test_free_disk_is_the_filesystem_s_as_shutil_reports_it(start_receiver) -> None:  # noqa: ANN001
    receiver = start_receiver()
    usage = shutil.disk_usage(receiver.server.spool)
    assert value(receiver, "medserve_dimse_spool_disk_size_bytes") == usage.total
    free = value(receiver, "medserve_dimse_spool_disk_free_bytes")
    assert abs(free - usage.free) <= 0.01 * usage.total  # other writers on the same disk meanwhile


def test_refused_associations_are_counted_by_reason(start_receiver) -> None:  # noqa: ANN001
    receiver = start_receiver(dimse_allowed_calling_aes=["PACS"])
    assert run(["echoscu", "-aet", "INTRUDER", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port)]).returncode != 0
    assert value(receiver, "medserve_dimse_associations_total", outcome="rejected_calling_ae") == 1
    assert value(receiver, "medserve_dimse_associations_total", outcome="accepted") == 0

    full = start_receiver(dimse_disk_watermark=1e-9, work_dir=receiver.server.spool.parent.parent / "full")
    assert run(["echoscu", "-aec", "MEDSERVE", "127.0.0.1", str(full.port)]).returncode != 0
    assert value(full, "medserve_dimse_associations_total", outcome="rejected_disk_watermark") == 1
    assert value(full, "medserve_dimse_associations_total", outcome="accepted") == 0


def test_rejection_reasons_name_the_ps3_8_diagnostics() -> None:
    assert rejection_reason(0x01, 0x03) == "rejected_calling_ae"
    assert rejection_reason(0x03, 0x02) == "rejected_max_associations"
    assert rejection_reason(0x03, 0x01) == "rejected_disk_watermark"
    assert rejection_reason(0x01, 0x01) == "rejected_other"


def test_refused_instances_are_counted_by_the_handler_s_reason(start_receiver, ct_series, tmp_path) -> None:  # noqa: ANN001
    receiver = start_receiver()
    [good] = ct_series("ct", slices=1)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[:-4000])
    assert send_raw(receiver.port, truncated, CTImageStorage) == 0xC001
    assert value(receiver, "medserve_dimse_instances_refused_total", reason="unreadable_dicom") == 1
    assert value(receiver, "medserve_dimse_instances_received_total", outcome="stored") == 0
    assert value(receiver, "medserve_dimse_received_bytes_total") == 0


def test_metrics_and_healthz_over_http(start_receiver) -> None:  # noqa: ANN001
    receiver = start_receiver()
    endpoint = serve_metrics(receiver.server.metrics, "127.0.0.1", 0, receiver.server.healthy)
    url = f"http://127.0.0.1:{endpoint.server_address[1]}"
    try:
        assert run(["echoscu", "-aec", "MEDSERVE", "127.0.0.1", str(receiver.port)]).returncode == 0
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
        assert {
            "medserve_dimse_associations", "medserve_dimse_associations_active", "medserve_dimse_instances_received",
            "medserve_dimse_instances_refused", "medserve_dimse_received_bytes", "medserve_dimse_series_completed",
            "medserve_dimse_spool_bytes", "medserve_dimse_spool_disk_free_bytes", "medserve_dimse_spool_disk_size_bytes",
        } <= set(families)
        [accepted] = [s for s in families["medserve_dimse_associations"].samples if s.name.endswith("_total")]
        assert accepted.labels == {"outcome": "accepted"} and accepted.value == 1
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            assert response.status == 200
        receiver.server.stop()
        with pytest.raises(urllib.error.HTTPError) as stopped:
            urllib.request.urlopen(f"{url}/healthz", timeout=5)
        assert stopped.value.code == 503
    finally:
        endpoint.shutdown()
