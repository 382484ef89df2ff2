"""Synthetic chest-CT phantoms in Hounsfield units, deterministic from a numpy Generator.

They stand in for patient data, which cannot ship with the repo: a body ellipse of soft tissue
with fat, two lungs with vessels, a spine and ribs, a table, CT-like noise, and optionally solid
nodules in the lung parenchyma. Vessels are bright dots of nodule-like size, so telling a
nodule from a vessel cross-section is the actual task, not spotting any bright blob.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR_HU = -1000.0
LUNG_HU = -850.0
FAT_HU = -100.0
SOFT_TISSUE_HU = 40.0
NODULE_HU = 30.0
VESSEL_HU = 40.0
BONE_HU = 700.0


@dataclass(frozen=True)
class SlicePhantom:
    """One axial slice: ``hu`` (rows, cols) float32, the nodule mask, and the pixel spacing."""

    hu: np.ndarray
    nodule_mask: np.ndarray
    spacing_mm: tuple[float, float]

    @property
    def has_nodule(self) -> bool:
        return bool(self.nodule_mask.any())


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def chest_slice(
    rng: np.random.Generator,
    size: int = 256,
    nodules: int = 0,
    field_of_view_mm: float = 360.0,
    noise_hu: float = 20.0,
) -> SlicePhantom:
    """An axial chest-CT slice of ``size``×``size`` pixels with ``nodules`` lung nodules.

    Nodule diameters are 6–20 mm, vessel cross-sections at most about 5 mm; anatomy varies in size and position from slice to slice.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    s = size / 256.0
    hu = np.full((size, size), AIR_HU, dtype=np.float32)

    cy, cx = size * 0.5 + rng.uniform(-6, 6) * s, size * 0.5 + rng.uniform(-6, 6) * s
    body_ry, body_rx = rng.uniform(78, 92) * s, rng.uniform(108, 120) * s
    body = _ellipse(yy, xx, cy, cx, body_ry, body_rx)
    hu[body] = FAT_HU
    hu[_ellipse(yy, xx, cy, cx, body_ry - 8 * s, body_rx - 8 * s)] = SOFT_TISSUE_HU

    lungs = np.zeros((size, size), dtype=bool)
    lung_centres = []
    for side in (-1, 1):
        ly = cy - rng.uniform(2, 8) * s
        lx = cx + side * rng.uniform(48, 56) * s
        ry, rx = rng.uniform(55, 66) * s, rng.uniform(34, 42) * s
        lungs |= _ellipse(yy, xx, ly, lx, ry, rx)
        lung_centres.append((ly, lx, ry, rx))
    hu[lungs] = LUNG_HU

    # Vessels: bright cross-sections, denser and larger towards the hilum.
    for ly, lx, ry, rx in lung_centres:
        for _ in range(rng.integers(10, 22)):
            r, a = rng.uniform(0.1, 0.9), rng.uniform(0, 2 * np.pi)
            vy, vx = ly + r * ry * np.sin(a), lx + r * rx * np.cos(a)
            vr = rng.uniform(0.6, 1.9) * s * (1.2 - 0.5 * r)
            hu[_ellipse(yy, xx, vy, vx, vr, vr) & lungs] = VESSEL_HU

    # Heart / mediastinum, spine and ribs.
    hu[_ellipse(yy, xx, cy + 8 * s, cx + rng.uniform(-4, 10) * s, 32 * s, 26 * s)] = SOFT_TISSUE_HU
    spine_y = cy + body_ry - 26 * s
    hu[_ellipse(yy, xx, spine_y, cx, 11 * s, 10 * s)] = BONE_HU
    for k in range(-3, 4):
        if k == 0:
            continue
        angle = np.pi / 2 + k * 0.42
        ry_, rx_ = body_ry - 10 * s, body_rx - 10 * s
        hu[_ellipse(yy, xx, cy + ry_ * np.sin(angle), cx + rx_ * np.cos(angle), 4 * s, 5 * s)] = BONE_HU

    nodule_mask = np.zeros((size, size), dtype=bool)
    mm_per_px = field_of_view_mm / size
    placed = 0
    for _ in range(200):
        if placed >= nodules:
            break
        ly, lx, ry, rx = lung_centres[rng.integers(0, 2)]
        r, a = rng.uniform(0.0, 0.7), rng.uniform(0, 2 * np.pi)
        ny, nx = ly + r * ry * np.sin(a), lx + r * rx * np.cos(a)
        radius_px = rng.uniform(3.0, 10.0) / mm_per_px
        blob = _ellipse(yy, xx, ny, nx, radius_px, radius_px * rng.uniform(0.8, 1.2))
        if (blob & ~lungs).sum() > 0.1 * blob.sum():
            continue
        hu[blob] = NODULE_HU + rng.normal(0, 15)
        nodule_mask |= blob
        placed += 1

    hu += rng.normal(0.0, noise_hu, size=hu.shape).astype(np.float32)
    hu[~body & (yy < cy + body_ry + 6 * s)] = AIR_HU + rng.normal(0, 5, size=hu[~body & (yy < cy + body_ry + 6 * s)].shape)
    table = (yy > cy + body_ry + 10 * s) & (yy < cy + body_ry + 16 * s)
    hu[table] = 200.0
    np.clip(hu, -1024.0, 3071.0, out=hu)
    return SlicePhantom(hu=hu, nodule_mask=nodule_mask, spacing_mm=(mm_per_px, mm_per_px))


def chest_volume(
    rng: np.random.Generator,
    slices: int,
    size: int = 256,
    nodules: int = 0,
    field_of_view_mm: float = 360.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A (slices, size, size) HU volume and nodule mask: per-slice anatomy with spherical
    nodules spanning several slices. Cheap enough for 300×512×512 benchmark series."""
    base = chest_slice(rng, size=size, nodules=0, field_of_view_mm=field_of_view_mm, noise_hu=0.0).hu
    volume = np.repeat(base[np.newaxis], slices, axis=0)
    mask = np.zeros(volume.shape, dtype=bool)
    lung = base < -500
    zz, yy, xx = np.ogrid[0:slices, 0:size, 0:size]
    candidates = np.argwhere(lung)
    for _ in range(nodules):
        cy, cx = candidates[rng.integers(0, len(candidates))]
        cz = rng.integers(0, slices)
        radius_px = rng.uniform(3.0, 10.0) / (field_of_view_mm / size)
        ball = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= radius_px**2
        ball &= lung[np.newaxis]
        volume[ball] = NODULE_HU
        mask |= ball
    volume += rng.normal(0.0, 20.0, size=volume.shape).astype(np.float32)
    np.clip(volume, -1024.0, 3071.0, out=volume)
    return volume, mask
