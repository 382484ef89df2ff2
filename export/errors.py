"""The errors of ``export``; every failure a user can cause or meet is one of these::

    ExportError
     ├── ExportSpecError   the spec file is missing, unreadable or invalid (names the field)
     ├── ExportDataError   calibration / validation DICOM or their manifest are unusable
     └── ExportFailed      a conversion or verification step failed (names the step and why)

A lower-precision variant that misses its accuracy budget is not an error: the pipeline
records it as rejected in the report and does not write it.
"""

from __future__ import annotations


class ExportError(Exception):
    """Base of every export error; the message is meant for the person running the export."""


class ExportSpecError(ExportError, ValueError):
    """The spec file is missing, unreadable or invalid; the message names the field."""


class ExportDataError(ExportError):
    """A calibration or validation folder, its manifest, a label or a mask is unusable."""


class ExportFailed(ExportError, RuntimeError):
    """A conversion or verification step failed; the message says which and why."""
