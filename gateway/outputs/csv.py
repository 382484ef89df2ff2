"""``format=csv``: a segmentation's measurements as a table, one row per foreground class."""

from __future__ import annotations

import csv
import dataclasses
import io

from .encoder import SEGMENTATION_TASKS, Answer, Binary, OutputEncoder
from .measurements import ClassMeasurement

#: The columns: the fields of a measurement (volume in mL, largest diameter in mm).
COLUMNS = [field.name for field in dataclasses.fields(ClassMeasurement)]


def _answer(answer: Answer) -> Binary:
    table = io.StringIO()
    writer = csv.writer(table)  # RFC 4180: CRLF line ends, quoted only where needed
    writer.writerow(COLUMNS)
    writer.writerows(dataclasses.astuple(m) for m in answer.result.measurements)
    disposition = f'attachment; filename="{answer.card.name}-measurements.csv"'
    return Binary(table.getvalue().encode("utf-8"), {"Content-Disposition": disposition})


FORMAT = OutputEncoder(
    name="csv",
    media_type="text/csv",
    summary="the per-class measurements as a table: label, voxels, volume (mL), components, largest diameter (mm)",
    encode=_answer,
    accept=("text/csv",),
    tasks=SEGMENTATION_TASKS,
)
