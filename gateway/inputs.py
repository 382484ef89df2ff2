"""What a request sent: its instances opened, counted into the input-mix metrics and the audit.

Opening parses headers only; uncompressed pixels stay a zero-copy view on the upload,
compressed ones are decoded by preprocessing later, frame by frame.
"""

from __future__ import annotations

from collections import Counter as TallyCounter

from pydicom.dataset import Dataset

from contract import ModelCard
from preprocessing import Instance, open_instance
from preprocessing.attributes import header_text

from .audit import AuditRecord
from .metrics import INPUTS, MANUFACTURER_VALUES, MODALITY_VALUES, TRANSFER_SYNTAX_VALUES
from .uploads import DicomPart


def open_parts(parts: list[DicomPart]) -> list[Instance]:
    """Every part opened by preprocessing's reader (its header checks and limits); raises
    :class:`preprocessing.PreprocessingError` for the first part that is not usable DICOM."""
    return [open_instance(part.data) for part in parts]


def count_inputs(card: ModelCard, headers: list[Dataset], audit: AuditRecord) -> None:
    """Input-mix counters (bounded label values) and the hashed UIDs for the audit trail."""
    mix: TallyCounter[tuple[str, str, str]] = TallyCounter()
    for ds in headers:
        mix[(header_text(ds, "Modality"), header_text(ds, "Manufacturer"), str(ds.file_meta.get("TransferSyntaxUID", "")))] += 1
        audit.add_instance(header_text(ds, "StudyInstanceUID"), header_text(ds, "SeriesInstanceUID"), header_text(ds, "SOPInstanceUID"))
    for (modality, manufacturer, syntax), count in mix.items():  # a series is one mix: one increment
        INPUTS.labels(
            card.name,
            MODALITY_VALUES(_printable(modality, 16)),
            MANUFACTURER_VALUES(_printable(manufacturer, 32)),
            TRANSFER_SYNTAX_VALUES(_printable(syntax, 64)),
        ).inc(count)


def _printable(value: str, length: int) -> str:
    return "".join(c for c in value if c.isalnum() or c in " -_.")[:length].strip() or "unknown"
