"""The C-STORE SCU of deliveries against real peers: dcmtk's ``storescp`` (taking Implicit VR
Little Endian only, as older PACS do) stores what is sent; pynetdicom SCPs answer with the
statuses a PACS may give, and each maps to its stable code and retry decision."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage

from devtools.processes import free_port
from jobs.delivery import DeliveryFailure, DimseDestination
from jobs.delivery.dimse_scu import send_dimse

CT = Path(get_testdata_file("CT_small.dcm"))  # Explicit VR Little Endian
MR = Path(get_testdata_file("MR_small.dcm"))


def destination(port: int, ae_title: str = "STORESCP", timeout_s: float = 10) -> DimseDestination:
    return DimseDestination(kind="dimse", ae_title=ae_title, host="127.0.0.1", port=port, timeout_s=timeout_s)


@pytest.fixture
def implicit_only_storescp(start_storescp):
    port = free_port()
    return port, start_storescp(port, "+xi")


def test_objects_are_stored_in_the_syntax_the_destination_accepts(implicit_only_storescp) -> None:
    port, folder = implicit_only_storescp
    send_dimse(destination(port), [CT, MR])
    stored = {pydicom.dcmread(path).SOPInstanceUID: pydicom.dcmread(path).file_meta.TransferSyntaxUID for path in folder.iterdir()}
    assert pydicom.dcmread(CT).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored == {pydicom.dcmread(CT).SOPInstanceUID: ImplicitVRLittleEndian, pydicom.dcmread(MR).SOPInstanceUID: ImplicitVRLittleEndian}


def test_nothing_listening_is_unreachable_and_holds_the_destination() -> None:
    with pytest.raises(DeliveryFailure) as failed:
        send_dimse(destination(free_port(), timeout_s=2), [CT])
    assert (failed.value.code, failed.value.retryable, failed.value.destination_down) == ("destination_unreachable", True, True)


def scp(statuses: dict[str, int] | None = None, require_called_aet: bool = False, contexts=(CTImageStorage,)):
    """A pynetdicom SCP on a free port answering C-STORE with ``statuses[SOP Class UID]`` (0x0000 otherwise)."""
    ae = AE(ae_title="PACS")
    ae.require_called_aet = require_called_aet
    for context in contexts:
        ae.add_supported_context(context, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    port = free_port()

    def on_store(event) -> int:
        return (statuses or {}).get(str(event.request.AffectedSOPClassUID), 0x0000)

    return ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]), port


@pytest.mark.parametrize(
    ("status", "expected"),
    [(0xB000, None), (0xA700, ("store_failed", True)), (0xA900, ("store_refused", False)), (0xC000, ("store_refused", False))],
    ids=["warning-coercion-is-stored", "out-of-resources-is-retried", "dataset-mismatch-is-refused", "cannot-understand-is-refused"],
)
def test_c_store_statuses_map_to_codes_and_retry_decisions(status: int, expected) -> None:
    server, port = scp({CTImageStorage: status})
    try:
        if expected is None:
            send_dimse(destination(port, "PACS"), [CT])
            return
        with pytest.raises(DeliveryFailure) as failed:
            send_dimse(destination(port, "PACS"), [CT])
        assert (failed.value.code, failed.value.retryable) == expected
        assert f"0x{status:04X}" in failed.value.message
    finally:
        server.shutdown()


def test_a_rejected_association_names_the_called_ae_title_problem() -> None:
    server, port = scp(require_called_aet=True)
    try:
        with pytest.raises(DeliveryFailure) as failed:
            send_dimse(destination(port, "NOT_PACS"), [CT])
        assert failed.value.code == "association_rejected" and failed.value.retryable and not failed.value.destination_down
    finally:
        server.shutdown()


def test_a_sop_class_the_destination_does_not_take_is_dead_lettered() -> None:
    server, port = scp()  # CT only
    try:
        with pytest.raises(DeliveryFailure) as failed:
            send_dimse(destination(port, "PACS"), [CT, MR])
        assert (failed.value.code, failed.value.retryable) == ("sop_class_not_accepted", False)
        assert "MR Image Storage" in failed.value.message
    finally:
        server.shutdown()
