"""A window over a whole volume is computed a cache-sized chunk at a time: the values are
pydicom's ``apply_windowing`` for every VOI LUT function, whether the volume is contiguous,
a strided view, or windowed in place, and whatever its size against the chunk."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

from preprocessing.pixels import _WINDOW_CHUNK, apply_window


def _pydicom(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    header = Dataset()
    header.PhotometricInterpretation = "MONOCHROME2"
    header.BitsStored = 16
    header.PixelRepresentation = 1
    header.WindowCenter, header.WindowWidth, header.VOILUTFunction = center, width, function
    header.RescaleSlope, header.RescaleIntercept = 1, 0
    low, high = -(2**15), 2**15 - 1  # the output range pydicom maps a signed 16-bit window to
    return (apply_windowing(values.astype(np.float64), header) - low) / (high - low)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("layout", ["contiguous", "in place", "strided view"])
def test_a_volume_larger_than_a_chunk_is_pydicoms_window(rng, function, layout) -> None:
    volume = np.rint(rng.uniform(-1500, 2500, (3, 211, 103))).astype(np.float32)  # 65 199 values, not a multiple
    assert volume.size > _WINDOW_CHUNK and volume.size % _WINDOW_CHUNK
    values = volume[:, ::2, 1:] if layout == "strided view" else volume
    expected = _pydicom(values, -600.0, 1500.0, function)
    if layout == "in place":
        windowed = apply_window(values, -600.0, 1500.0, function, out=values)
        assert windowed is values
    else:
        windowed = apply_window(values, -600.0, 1500.0, function)
    np.testing.assert_allclose(windowed, expected, rtol=0, atol=2e-6)
