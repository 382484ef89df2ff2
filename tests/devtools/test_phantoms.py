"""Synthetic chest-CT phantoms and the CT DICOM writer."""

from __future__ import annotations

import numpy as np
import pydicom
from scipy import ndimage

from devtools.dicomgen import ct_dataset, write_ct_series
from devtools.phantoms import LUNG_HU, chest_slice, chest_volume


def test_phantoms_are_deterministic_for_a_seed() -> None:
    a = chest_slice(np.random.default_rng(3), nodules=1)
    b = chest_slice(np.random.default_rng(3), nodules=1)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.nodule_mask, b.nodule_mask)


def test_nodules_are_solid_and_inside_the_lungs() -> None:
    phantom = chest_slice(np.random.default_rng(1), nodules=2)
    assert phantom.has_nodule
    assert np.median(phantom.hu[phantom.nodule_mask]) > -100  # soft-tissue density
    assert not chest_slice(np.random.default_rng(1), nodules=0).has_nodule
    ring = ndimage.binary_dilation(phantom.nodule_mask, iterations=2) & ~phantom.nodule_mask
    assert np.median(phantom.hu[ring]) < LUNG_HU + 150  # surrounded by lung parenchyma


def test_ct_instance_round_trips_hounsfield_units(tmp_path) -> None:
    phantom = chest_slice(np.random.default_rng(0), size=128)
    path = tmp_path / "slice.dcm"
    ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm, patient_name="DOE^JANE").save_as(path, enforce_file_format=True)
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(hu, np.clip(phantom.hu, -1024, 3071), atol=0.5)
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert [float(v) for v in ds.PixelSpacing] == list(phantom.spacing_mm)


def test_series_is_shuffled_on_disk_but_geometrically_ordered(tmp_path) -> None:
    volume, _ = chest_volume(np.random.default_rng(0), slices=6, size=64)
    paths = write_ct_series(tmp_path, volume, spacing_mm=(2.5, 0.7, 0.7), shuffle_seed=1)
    datasets = [pydicom.dcmread(p) for p in paths]
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert z == sorted(z) and np.allclose(np.diff(z), 2.5)
    assert [ds.InstanceNumber for ds in datasets] != sorted(ds.InstanceNumber for ds in datasets)
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1  # one patient coordinate system
