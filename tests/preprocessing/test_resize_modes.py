"""Each spec ``resize_mode`` against ``torch.nn.functional.interpolate`` on the same sizes:
upsampling, downsampling, non-integer ratios, 2D and 3D, odd sizes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from preprocessing.resample import RESIZE_MODES, nearest_indices, resize_grid, resize_with_mode  # noqa: E402

#: (input, output) shapes, 2D and 3D, up, down, equal and mixed per axis.
SHAPES = [
    ((7, 9), (16, 20)),
    ((64, 48), (20, 33)),
    ((37, 41), (37, 13)),
    ((5, 6, 7), (11, 3, 7)),
    ((12, 10, 9), (5, 17, 4)),
]
TORCH_MODE = {"linear": None, "nearest": "nearest", "nearest-exact": "nearest-exact", "area": "area", "cubic": "bicubic"}


def _torch_resize(array: np.ndarray, size: tuple[int, ...], mode: str) -> np.ndarray:
    tensor = torch.from_numpy(array)[None, None]
    if mode == "linear":
        mode_t = "bilinear" if array.ndim == 2 else "trilinear"
        return F.interpolate(tensor, size=size, mode=mode_t, align_corners=False)[0, 0].numpy()
    return F.interpolate(tensor, size=size, mode=TORCH_MODE[mode])[0, 0].numpy()


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "area", "linear"])
@pytest.mark.parametrize(("shape_in", "shape_out"), SHAPES)
def test_modes_equal_torch_interpolate(rng, mode, shape_in, shape_out):
    array = rng.normal(0, 1, shape_in).astype(np.float32)
    ours = resize_with_mode(array, shape_out, mode)
    reference = _torch_resize(array, shape_out, mode)
    assert ours.shape == reference.shape == shape_out
    if mode.startswith("nearest"):
        np.testing.assert_array_equal(ours, reference)  # a gather: exactly the same samples
    else:
        # float32 weights computed differently (PyTorch: w0 a + w1 b; here a + w (b - a))
        np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5)


@pytest.mark.parametrize(("shape_in", "shape_out"), [s for s in SHAPES if len(s[0]) == 2])
def test_cubic_equals_torch_bicubic(rng, shape_in, shape_out):
    array = rng.normal(0, 1, shape_in).astype(np.float32)
    np.testing.assert_allclose(
        resize_with_mode(array, shape_out, "cubic"), _torch_resize(array, shape_out, "cubic"), rtol=0, atol=2e-5
    )


@pytest.mark.parametrize("size_in", [1, 3, 7, 10, 13, 33, 100, 127, 255, 512])
@pytest.mark.parametrize("size_out", [1, 2, 5, 9, 10, 21, 64, 99, 128, 300])
@pytest.mark.parametrize("exact", [False, True])
def test_nearest_indices_equal_torch_on_many_ratios(size_in, size_out, exact):
    """Float32 rounding of the scale decides ties; every ratio here against PyTorch's gather."""
    ramp = torch.arange(size_in, dtype=torch.float32)[None, None]
    mode = "nearest-exact" if exact else "nearest"
    expected = F.interpolate(ramp, size=size_out, mode=mode)[0, 0].numpy().astype(np.intp)
    np.testing.assert_array_equal(nearest_indices(size_in, size_out, exact=exact), expected)


def test_nearest_keeps_labels_and_area_keeps_the_mean(rng):
    labels = rng.integers(0, 4, (30, 22)).astype(np.float32)
    assert set(np.unique(resize_with_mode(labels, (17, 50), "nearest-exact"))) <= {0, 1, 2, 3}
    image = rng.normal(0, 1, (40, 60)).astype(np.float32)
    pooled = resize_with_mode(image, (10, 20), "area")  # integer ratios: exact block means
    np.testing.assert_allclose(pooled, image.reshape(10, 4, 20, 3).mean(axis=(1, 3)), atol=1e-6)
    assert pooled.mean() == pytest.approx(image.mean(), abs=1e-5)


def test_same_size_is_the_identity_and_unknown_mode_refused(rng):
    array = rng.normal(0, 1, (8, 9)).astype(np.float32)
    for mode in RESIZE_MODES:
        np.testing.assert_array_equal(resize_with_mode(array, (8, 9), mode), array)
    with pytest.raises(ValueError, match="resize mode"):
        resize_with_mode(array, (4, 4), "lanczos")


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_resize_grid_locates_samples(mode):
    """Resizing a ramp of input indices gives, at interior samples, the grid's positions (for
    nearest: the floor of them), which is what the affine of a resized volume is built from."""
    size_in, size_out = 40, 16
    ramp = np.arange(size_in, dtype=np.float32)[:, None].repeat(2, axis=1)
    sampled = resize_with_mode(ramp, (size_out, 2), mode)[:, 0]
    start, step = resize_grid(size_in, size_out, mode)
    positions = start + np.arange(size_out) * step
    interior = slice(2, -2)
    if mode.startswith("nearest"):
        assert np.all(np.abs(sampled[interior] - positions[interior]) <= 0.5 * step + 0.5)
    else:
        # Keys' kernel with a = -0.75 reproduces a ramp only to within a few hundredths; area
        # windows of a non-integer ratio are whole samples, so their centres move by < 0.5
        atol = {"cubic": 0.1, "area": 0.5}.get(mode, 1e-4)
        np.testing.assert_allclose(sampled[interior], positions[interior], atol=atol)
