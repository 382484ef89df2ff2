"""DICOM in, model-ready arrays out. Pure numpy + pydicom (and pydicom's decoder plugins).

2D: ``preprocess_instance(read_dataset(body), spec)``. Series, 3D and 2.5D:
``preprocess_series([body, ...], spec)`` (Datasets, Part 10 bytes or paths), or
``assemble_series(...)`` for the volume of modality values with its geometry. Specs come from
the Triton model config via ``PreprocessingSpec.from_dict``. Every error is a
``PreprocessingError`` with a stable ``code`` (see :mod:`preprocessing.errors`).
"""

from .decode import Instance, InstanceSource, decode_frame, decode_pixels, open_instance, read_dataset
from .errors import (
    InconsistentSeries,
    InputTooLarge,
    InvalidDicom,
    InvalidSpec,
    MissingPixelData,
    ModalityMismatch,
    PreprocessingError,
    UnsupportedTransferSyntax,
)
from .limits import InputLimits, configure_limits, current_limits
from .pipeline import PreparedInput, VolumeGeometry, prepare_slice, preprocess_instance, preprocess_series
from .series import Series, SeriesPlan, SeriesWarning, assemble_series, group_series, plan_series
from .resample import resize_with_mode
from .spec import WINDOW_PRESETS_HU, NormalizeSpec, NormalizeStep, PreprocessingSpec, WindowSpec

__all__ = [
    "WINDOW_PRESETS_HU",
    "InconsistentSeries",
    "InputLimits",
    "InputTooLarge",
    "Instance",
    "InstanceSource",
    "InvalidDicom",
    "InvalidSpec",
    "MissingPixelData",
    "ModalityMismatch",
    "NormalizeSpec",
    "NormalizeStep",
    "PreparedInput",
    "PreprocessingError",
    "PreprocessingSpec",
    "Series",
    "SeriesPlan",
    "SeriesWarning",
    "UnsupportedTransferSyntax",
    "VolumeGeometry",
    "WindowSpec",
    "assemble_series",
    "configure_limits",
    "current_limits",
    "decode_frame",
    "decode_pixels",
    "group_series",
    "open_instance",
    "plan_series",
    "prepare_slice",
    "preprocess_instance",
    "preprocess_series",
    "read_dataset",
    "resize_with_mode",
]
