"""A real brain in a real scanner header: the MNI ICBM152 2009a T1 template resampled into the
geometry of a Philips enhanced multi-frame, sagittal-oblique MPRAGE.

Sources, both shipped inside wheels (nothing is downloaded):

- the header: ``nibabel/nicom/tests/data/philips_mprage.dcm.gz`` (``nibabel``, MIT licence):
  Enhanced MR Image Storage, 176 frames of 256 × 256 at 1 mm, slices 1 mm apart along the
  normal of an oblique (about 2° and 4°) sagittal plane; anonymised, its PixelData all zero;
- the anatomy: ``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``
  (``nilearn``): 197 × 233 × 189 voxels of 1 mm, RAS, uint8 0..255; nilearn ships it already
  skull-stripped (brain only, background 0). Copyright (C) 1993–2009 Louis Collins, McConnell Brain Imaging Centre,
  Montreal Neurological Institute, McGill University; its notice permits use, copying,
  modification and distribution for any purpose without fee provided the copyright notice
  appears in all copies (nilearn's own description of the file says "License: unknown").

Every voxel of every frame is placed where the header says (Plane Position, Plane Orientation,
Pixel Measures of its functional groups, DICOM's LPS patient axes), converted to RAS, and the
template is sampled there trilinearly (``scipy.ndimage.map_coordinates``, order 1, 0 outside)
after a translation that puts the template's centre on the centre of the Philips volume.
Stored values are the template × 4 (0..1020, a real MR's range, within the header's 12 stored
bits); the header's Rescale Slope (2.108) is kept, so modality values reach about 2150, and its
Frame VOI LUT (centre 13, width 23, made for blank pixels) is replaced by a window spanning them.
"""

from __future__ import annotations

import copy
import gzip
import io
from importlib.util import find_spec
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import MRImageStorage, PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from .geometry import FrameGeometry, enhanced_geometry, functional_item

#: stored value per template unit: 255 → 1020, a real T1 MR's range within 12 bits.
TEMPLATE_GAIN = 4.0
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
#: UIDs under this root name DICOM's own registry entries (SOP classes, transfer syntaxes, codes):
#: they are kept; every other UID of the header is replaced.
DICOM_UID_ROOT = "1.2.840.10008."


def philips_header_path() -> Path:
    """nibabel's anonymised Philips enhanced MPRAGE (gzip of a Part 10 file)."""
    # By nibabel's folder, not importlib.resources: importing nibabel.nicom warns that its DICOM
    # readers are experimental, and nothing here uses them.
    return Path(nib.__file__).parent / "nicom" / "tests" / "data" / "philips_mprage.dcm.gz"


def mni_t1_path() -> Path:
    """nilearn's MNI ICBM152 2009a symmetric T1 template (1 mm, RAS)."""
    # Found without importing nilearn (which pulls scikit-learn and pandas in).
    nilearn = Path(find_spec("nilearn").origin).parent  # type: ignore[union-attr, arg-type]
    return nilearn / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def read_philips_header() -> Dataset:
    with gzip.open(philips_header_path()) as f:
        return pydicom.dcmread(io.BytesIO(f.read()))


def brain_volume(geometry: FrameGeometry) -> np.ndarray:
    """The MNI T1 template sampled at every pixel of ``geometry``: uint16 (frames, rows, columns)
    in frame order, template × :data:`TEMPLATE_GAIN`, 0 outside the template."""
    template = nib.load(mni_t1_path())
    data = np.asarray(template.dataobj, dtype=np.float32)
    world_to_voxel = np.linalg.inv(template.affine)
    template_centre_ras = template.affine[:3, :3] @ ((np.asarray(data.shape) - 1) / 2) + template.affine[:3, 3]
    shift_ras = template_centre_ras - LPS_TO_RAS @ geometry.centre_lps()
    out = np.empty((len(geometry.position_mm), geometry.rows, geometry.columns), dtype=np.uint16)
    for k in range(len(out)):
        ras = geometry.voxel_lps(k).reshape(-1, 3) @ LPS_TO_RAS.T + shift_ras
        ijk = ras @ world_to_voxel[:3, :3].T + world_to_voxel[:3, 3]
        values = ndimage.map_coordinates(data, ijk.T, order=1, mode="constant", cval=0.0)
        out[k] = np.rint(values * TEMPLATE_GAIN).reshape(geometry.rows, geometry.columns)
    return out


def _renew_uids(ds: Dataset) -> None:
    """Replace every UID of ``ds`` (nested and private ones included) that is not a DICOM registry
    UID by a fresh one, the same old value always by the same new one so references hold."""
    fresh: dict[str, str] = {}

    def renew(dataset: Dataset, element) -> None:  # noqa: ANN001 - pydicom's walk callback
        if element.VR != "UI" or not element.value:
            return
        values = element.value if element.VM > 1 else [element.value]
        new = [v if str(v).startswith(DICOM_UID_ROOT) else fresh.setdefault(str(v), generate_uid()) for v in values]
        element.value = new if element.VM > 1 else new[0]

    ds.walk(renew)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID


def _set_image_pixels(ds: Dataset, stored: np.ndarray) -> None:
    """PixelData and a consistent unsigned 16-bit Image Pixel module (12 bits stored, as the
    Philips header declares)."""
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()


def brain_mr_dataset() -> Dataset:
    """The enhanced MR dataset: the Philips header with fresh UIDs and the brain as pixels."""
    ds = read_philips_header()
    volume = brain_volume(enhanced_geometry(ds))
    if volume.max() >= 1 << 12:
        raise ValueError("brain pixels exceed the 12 stored bits")
    _renew_uids(ds)
    _set_image_pixels(ds, volume)
    ds.NumberOfFrames = len(volume)
    _set_window(ds, volume)
    return ds


def _set_window(ds: Dataset, volume: np.ndarray) -> None:
    """The header's Frame VOI LUT (centre 13, width 23, for its blank pixels) replaced by one
    that spans the brain's modality values, in every frame that carries one."""
    for frame in ds.PerFrameFunctionalGroupsSequence:
        slope = float(functional_item(ds, frame, "PixelValueTransformationSequence").get("RescaleSlope", 1.0))
        width = float(volume.max()) * slope
        for voi in frame.get("FrameVOILUTSequence", []):
            voi.WindowCenter, voi.WindowWidth = round(width / 2, 2), round(width, 2)


def write_brain_mr(path: str | Path) -> Path:
    """Write the brain as ONE Enhanced MR Image Storage file (176 frames of 256 × 256) at ``path``."""
    path = Path(path)
    brain_mr_dataset().save_as(path, enforce_file_format=True)
    return path


#: Patient, study and equipment attributes a classic image copies from the enhanced header.
_CLASSIC_COPIED = (
    "SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber", "Modality", "Manufacturer",
    "InstitutionName", "ReferringPhysicianName", "StudyDescription", "SeriesDescription",
    "ManufacturerModelName", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "BodyPartExamined", "SoftwareVersions", "ProtocolName", "PatientPosition", "StudyInstanceUID",
    "StudyID", "SeriesNumber", "FrameOfReferenceUID", "PositionReferenceIndicator", "MagneticFieldStrength",
)


def _classic_frame(ds: Dataset, frame: Dataset, k: int, series_uid: str) -> Dataset:
    """Frame ``k`` of the enhanced ``ds`` as a classic MR Image Storage instance."""
    out = Dataset()
    out.file_meta = FileMetaDataset()
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out.file_meta.MediaStorageSOPClassUID = MRImageStorage
    out.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out.preamble = b"\0" * 128
    for keyword in _CLASSIC_COPIED:
        if keyword in ds:
            setattr(out, keyword, copy.deepcopy(ds[keyword].value))
    out.SOPClassUID = MRImageStorage
    out.SOPInstanceUID = out.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out.SeriesInstanceUID = series_uid
    out.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    out.ScanningSequence, out.SequenceVariant, out.ScanOptions, out.MRAcquisitionType = "GR", "MP", "", "3D"
    out.InstanceNumber = k + 1
    out.ImagePositionPatient = list(functional_item(ds, frame, "PlanePositionSequence").ImagePositionPatient)
    out.ImageOrientationPatient = list(functional_item(ds, frame, "PlaneOrientationSequence").ImageOrientationPatient)
    measures = functional_item(ds, frame, "PixelMeasuresSequence")
    out.PixelSpacing = list(measures.PixelSpacing)
    out.SliceThickness = measures.SliceThickness
    out.SpacingBetweenSlices = measures.SliceThickness  # contiguous 3D slab: 1 mm apart, 1 mm thick
    transform = functional_item(ds, frame, "PixelValueTransformationSequence")
    out.RescaleIntercept, out.RescaleSlope = transform.RescaleIntercept, transform.RescaleSlope
    voi = functional_item(ds, frame, "FrameVOILUTSequence")
    if "WindowCenter" in voi:
        out.WindowCenter, out.WindowWidth = voi.WindowCenter, voi.WindowWidth
    return out


def write_brain_series(folder: str | Path) -> list[Path]:
    """Write the same brain as a classic single-frame MR Image Storage series, one file per frame
    (``IM_0001.dcm`` … in frame order; Instance Number = enhanced frame number), into ``folder``.
    Same study and frame of reference as one :func:`brain_mr_dataset`, a series of its own."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ds = brain_mr_dataset()
    volume = ds.pixel_array
    series_uid = generate_uid()
    paths = []
    for k, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        out = _classic_frame(ds, frame, k, series_uid)
        _set_image_pixels(out, volume[k])
        path = folder / f"IM_{k + 1:04d}.dcm"
        out.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
