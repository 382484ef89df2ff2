"""Errors raised while turning DICOM bytes into model-ready arrays.

Every error carries a stable, machine-readable ``code`` (the gateway maps codes to HTTP
status in one place) and a message that tells the sender what to fix. Messages never
contain patient-identifying values.

    PreprocessingError                    code
    ├── InvalidDicom                      invalid_dicom               not DICOM, truncated, corrupt compressed
    │                                                                 data, or lacking what the model needs
    │                                                                 (a window, a pixel spacing, SUV tags)
    ├── MissingPixelData                  missing_pixel_data          no (7FE0,0010) Pixel Data
    ├── UnsupportedTransferSyntax         unsupported_transfer_syntax no installed decoder
    ├── InconsistentSeries                inconsistent_series         instances do not form one volume: several
    │                                                                 series, mixed orientation/size/spacing,
    │                                                                 two frames at one position, missing slices
    ├── ModalityMismatch                  modality_mismatch           e.g. MR sent to a CT model
    ├── InputTooLarge                     input_too_large             a declared size over the limits of
    │                                                                 :mod:`preprocessing.limits` (frames, pixels,
    │                                                                 voxels, instances, header depth/elements)
    └── InvalidSpec                       invalid_spec                a preprocessing spec is malformed
"""

from __future__ import annotations


class PreprocessingError(Exception):
    """Base class: the input (or spec) cannot be turned into a model input."""

    code: str = "preprocessing_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDicom(PreprocessingError):
    """The bytes are not a readable DICOM Part 10 object (or are truncated)."""

    code = "invalid_dicom"


class MissingPixelData(PreprocessingError):
    """The dataset has no (7FE0,0010) *Pixel Data* (or float/double variants)."""

    code = "missing_pixel_data"


class UnsupportedTransferSyntax(PreprocessingError):
    """No installed pixel-data decoder handles the dataset's transfer syntax."""

    code = "unsupported_transfer_syntax"


class InconsistentSeries(PreprocessingError):
    """Instances cannot be assembled into one geometrically consistent volume."""

    code = "inconsistent_series"


class ModalityMismatch(PreprocessingError):
    """The dataset's (0008,0060) *Modality* is not one the model was trained on."""

    code = "modality_mismatch"


class InputTooLarge(PreprocessingError):
    """The input declares more than :mod:`preprocessing.limits` admits; refused before any
    of it is allocated."""

    code = "input_too_large"


class InvalidSpec(PreprocessingError):
    """A preprocessing spec is malformed; raised when it is parsed, never per request."""

    code = "invalid_spec"
