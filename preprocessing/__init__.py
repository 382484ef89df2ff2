"""DICOM in, model-ready arrays out. Pure numpy + pydicom (and pydicom's decoder plugins)."""

from .decode import decode_pixels, read_dataset
from .errors import (
    InconsistentSeries,
    InvalidDicom,
    InvalidSpec,
    MissingPixelData,
    ModalityMismatch,
    PreprocessingError,
    UnsupportedTransferSyntax,
)
from .pipeline import PreparedInput, prepare_slice, preprocess_instance
from .spec import WINDOW_PRESETS_HU, PreprocessingSpec, WindowSpec

__all__ = [
    "WINDOW_PRESETS_HU",
    "InconsistentSeries",
    "InvalidDicom",
    "InvalidSpec",
    "MissingPixelData",
    "ModalityMismatch",
    "PreparedInput",
    "PreprocessingError",
    "PreprocessingSpec",
    "UnsupportedTransferSyntax",
    "WindowSpec",
    "decode_pixels",
    "prepare_slice",
    "preprocess_instance",
    "read_dataset",
]
