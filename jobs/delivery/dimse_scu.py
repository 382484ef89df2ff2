"""Delivery by DIMSE: the outputs of one job over one association to a C-STORE SCP.

Each SOP class sent is proposed with the file's own transfer syntax, then Explicit and Implicit
VR Little Endian, so that a destination that takes only Implicit VR (older PACS) still gets the
objects: pynetdicom re-encodes an uncompressed dataset into whichever the destination accepted.
A C-STORE is stored when its status is Success or a Warning (coercion 0xB000, elements
discarded 0xB007, mismatch 0xB006, PS3.4 B.2.3); Out of Resources (0xA7xx) is worth another
attempt; any other failure is the destination refusing the object, which a retry would repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from .destinations import DimseDestination
from .errors import DeliveryFailure

__all__ = ["send_dimse"]

#: C-STORE statuses that mean the object is stored (PS3.4 Table B.2-1; PS3.7 C.4 "warning").
STORED_STATUSES = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


def _transfer_syntaxes(dataset: Dataset) -> list[str]:
    own = str(dataset.file_meta.TransferSyntaxUID)
    return list(dict.fromkeys([own, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))


def send_dimse(destination: DimseDestination, files: Sequence[Path]) -> None:
    """C-STORE every file to ``destination`` in one association; :class:`DeliveryFailure` at
    the first that is not stored (the whole delivery is attempted again)."""
    datasets = [dcmread(path) for path in files]
    ae = AE(ae_title=destination.calling_ae)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = destination.timeout_s
    contexts: dict[str, list[str]] = {}
    for dataset in datasets:
        syntaxes = contexts.setdefault(str(dataset.SOPClassUID), [])
        syntaxes.extend(syntax for syntax in _transfer_syntaxes(dataset) if syntax not in syntaxes)
    for sop_class, syntaxes in contexts.items():
        ae.add_requested_context(sop_class, syntaxes)
    where = destination.address
    association = ae.associate(destination.host, destination.port, ae_title=destination.ae_title.strip())
    if association.is_rejected:
        raise DeliveryFailure("association_rejected", f"{where} rejected the association (check its AE title and its list of known modalities)")
    if not association.is_established:
        raise DeliveryFailure("destination_unreachable", f"no association with {where}: not answering or aborted", destination_down=True)
    try:
        accepted = {context.abstract_syntax for context in association.accepted_contexts}
        for index, dataset in enumerate(datasets):
            if str(dataset.SOPClassUID) not in accepted:
                raise DeliveryFailure(
                    "sop_class_not_accepted", f"{where} accepts no presentation context for {dataset.SOPClassUID.name} (file {index + 1})",
                    retryable=False,
                )
            status = association.send_c_store(dataset)
            if "Status" not in status:
                raise DeliveryFailure("destination_unreachable", f"{where} did not answer C-STORE {index + 1} (association lost or timed out)", destination_down=True)
            code = int(status.Status)
            if code in STORED_STATUSES:
                continue
            if 0xA700 <= code <= 0xA7FF:
                raise DeliveryFailure("store_failed", f"{where} is out of resources (C-STORE status 0x{code:04X})")
            raise DeliveryFailure("store_refused", f"{where} refused C-STORE {index + 1} with status 0x{code:04X}", retryable=False)
    finally:
        if association.is_established:
            association.release()
