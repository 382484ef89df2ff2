"""``format=csv``: a segmentation's measurements as a table, one row per foreground class."""

from __future__ import annotations

import csv
import dataclasses
import io

from .encoder import SEGMENTATION_TASKS, Answer, Binary, output_format
from .measurements import ClassMeasurement

#: The columns: the fields of a measurement (volume in mL, largest diameter in mm).
COLUMNS = [field.name for field in dataclasses.fields(ClassMeasurement)]


@output_format("csv", "text/csv", tasks=SEGMENTATION_TASKS)
def encoder(answer: Answer) -> Binary:
    """the per-class measurements as a table: label, voxels, volume (mL), components, largest diameter (mm)"""
    table = io.StringIO()
    writer = csv.writer(table)  # RFC 4180: CRLF line ends, quoted only where needed
    writer.writerow(COLUMNS)
    writer.writerows(dataclasses.astuple(m) for m in answer.result.measurements)
    return Binary.attachment(table.getvalue().encode("utf-8"), f"{answer.card.name}-measurements.csv")
