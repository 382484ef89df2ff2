"""Real DICOM files written by others, as parametrized tables, for the preprocessing tests.

Every image file with pixel data that ships in pydicom, pydicom-data, nibabel's and
pynetdicom's test data is listed in :data:`REAL_IMAGES`; the broken ones and those without
pixels in :data:`BROKEN_FILES`. Tests ask for the fixtures ``real_image``,
``real_grayscale_image``, ``real_voi_image`` (a VOI LUT module), ``real_window_image`` (a
window), ``real_color_image`` or ``broken_file`` and are
parametrized over the matching rows (``pytest_generate_tests``). pydicom files are always
located with ``get_testdata_file(name, download=False)``: a miss would try the network.
"""

from __future__ import annotations

import functools
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from devtools.testdata import pydicom_test_file as _pydicom_file
from devtools.testdata import pynetdicom_test_file as _pynetdicom_file
from preprocessing import InvalidDicom, MissingPixelData, PreprocessingError


def _dicomdir_file(relative: str) -> Path:
    return _pydicom_file("CT_small.dcm").parent / "dicomdirtests" / relative


def _nibabel_file(relative: str) -> Path:
    import nibabel

    return Path(nibabel.__file__).parent / relative


_LOCATORS = {
    "pydicom": _pydicom_file,
    "pydicom-data": _pydicom_file,
    "dicomdir": _dicomdir_file,
    "nibabel": _nibabel_file,
    "pynetdicom": _pynetdicom_file,
}


@dataclass(frozen=True)
class RealFile:
    """One file of the tables: where it comes from and its Part 10 bytes (gunzipped)."""

    source: str
    name: str

    @property
    def path(self) -> Path:
        return _LOCATORS[self.source](self.name)

    @property
    def data(self) -> bytes:
        return _read(self.source, self.name)

    def dataset(self) -> Dataset:
        """A fresh pydicom Dataset, the reference implementation's view of the file."""
        return pydicom.dcmread(io.BytesIO(self.data))

    def __str__(self) -> str:
        return self.name.rsplit("/", 1)[-1] if self.source != "dicomdir" else self.name.replace("/", "_")


@functools.lru_cache(maxsize=None)
def _read(source: str, name: str) -> bytes:
    data = _LOCATORS[source](name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


#: Every real image with pixel data: (source, file). The comment says what the row covers.
REAL_IMAGES: list[tuple[str, str]] = [
    ("pydicom", "CT_small.dcm"),  # CT 128×128 int16, explicit VR LE, rescale, padding value without padded pixels
    ("pydicom", "693_J2KI.dcm"),  # CT 512×512, JPEG 2000 lossy, 14-bit signed, padding -2000
    ("pydicom", "MR_small.dcm"),  # MR 64×64 int16, explicit VR LE
    ("pydicom", "MR_small_implicit.dcm"),  # same image, implicit VR LE
    ("pydicom", "MR_small_bigendian.dcm"),  # same image, explicit VR big endian
    ("pydicom", "MR_small_expb.dcm"),  # same image, explicit VR big endian (second encoder)
    ("pydicom", "MR_small_RLE.dcm"),  # same image, RLE lossless
    ("pydicom", "MR_small_jp2klossless.dcm"),  # same image, JPEG 2000 lossless
    ("pydicom", "MR_small_jpeg_ls_lossless.dcm"),  # same image, JPEG-LS lossless
    ("pydicom", "MR_small_padded.dcm"),  # same image, odd padding after the pixel data
    ("pydicom", "zipMR.gz"),  # MR 64×64 gzipped file
    ("pydicom", "JPEG2000.dcm"),  # NM 1024×256 int16, JPEG 2000
    ("pydicom", "JPGExtended.dcm"),  # NM 1024×256 12-bit, JPEG extended (process 2 and 4)
    ("pydicom", "JPEGLSNearLossless_08.dcm"),  # 8-bit JPEG-LS near-lossless
    ("pydicom", "JPEGLSNearLossless_16.dcm"),  # 16-bit JPEG-LS near-lossless
    ("pydicom", "J2K_pixelrep_mismatch.dcm"),  # CT JPEG 2000 whose codestream signedness disagrees with the header
    ("pydicom", "GDCMJ2K_TextGBR.dcm"),  # RGB JPEG 2000 with YBR_RCT
    ("pydicom", "ExplVR_BigEnd.dcm"),  # US RGB 8-bit big endian
    ("pydicom", "SC_jpeg_no_color_transform.dcm"),  # RGB JPEG baseline without YCbCr transform
    ("pydicom", "SC_jpeg_no_color_transform_2.dcm"),  # same, second encoder
    ("pydicom", "SC_rgb_dcmtk_+eb+cr.dcm"),  # dcmtk JPEG baseline RGB
    ("pydicom", "SC_rgb_dcmtk_+eb+cy+n1.dcm"),  # dcmtk JPEG baseline YBR_FULL
    ("pydicom", "SC_rgb_dcmtk_+eb+cy+n2.dcm"),  # dcmtk JPEG baseline YBR_FULL, other subsampling
    ("pydicom", "SC_rgb_dcmtk_+eb+cy+np.dcm"),  # dcmtk JPEG baseline YBR_FULL_422
    ("pydicom", "SC_rgb_dcmtk_+eb+cy+s2.dcm"),  # dcmtk JPEG baseline YBR_FULL_422, 4:2:2
    ("pydicom", "SC_rgb_dcmtk_+eb+cy+s4.dcm"),  # dcmtk JPEG baseline YBR_FULL, 4:1:1
    ("pydicom", "SC_rgb_gdcm_KY.dcm"),  # gdcm JPEG 2000 RGB
    ("pydicom", "SC_rgb_jls_lossy_line.dcm"),  # JPEG-LS near-lossless RGB, line interleaved
    ("pydicom", "SC_rgb_jls_lossy_sample.dcm"),  # JPEG-LS near-lossless RGB, sample interleaved
    ("pydicom", "SC_rgb_jpeg.dcm"),  # JPEG baseline RGB
    ("pydicom", "SC_rgb_jpeg_app14_dcmd.dcm"),  # JPEG baseline with an Adobe APP14 marker
    ("pydicom", "SC_rgb_jpeg_dcmd.dcm"),  # uncompressed RGB, implicit VR
    ("pydicom", "SC_rgb_jpeg_dcmtk.dcm"),  # dcmtk JPEG baseline YBR_FULL
    ("pydicom", "SC_rgb_jpeg_gdcm.dcm"),  # gdcm JPEG lossless SV1 RGB
    ("pydicom", "SC_rgb_jpeg_lossy_gdcm.dcm"),  # gdcm JPEG baseline YBR_FULL
    ("pydicom", "SC_rgb_rle.dcm"),  # RLE RGB 8-bit
    ("pydicom", "SC_rgb_rle_16bit.dcm"),  # RLE RGB 16-bit
    ("pydicom", "SC_rgb_rle_16bit_2frame.dcm"),  # RLE RGB 16-bit, 2 frames
    ("pydicom", "SC_rgb_rle_2frame.dcm"),  # RLE RGB 8-bit, 2 frames
    ("pydicom", "SC_rgb_rle_32bit.dcm"),  # RLE RGB 32-bit
    ("pydicom", "SC_rgb_rle_32bit_2frame.dcm"),  # RLE RGB 32-bit, 2 frames
    ("pydicom", "SC_rgb_small_odd.dcm"),  # 3×3 RGB, odd length
    ("pydicom", "SC_rgb_small_odd_big_endian.dcm"),  # 3×3 RGB, big endian 8-bit OW
    ("pydicom", "SC_rgb_small_odd_jpeg.dcm"),  # 3×3 JPEG baseline
    ("pydicom", "SC_ybr_full_422_uncompressed.dcm"),  # uncompressed YBR_FULL_422 (subsampled)
    ("pydicom", "examples_jpeg2k.dcm"),  # US JPEG 2000 YBR_RCT
    ("pydicom", "examples_overlay.dcm"),  # MR 300×484 with overlays
    ("pydicom", "examples_palette.dcm"),  # US PALETTE COLOR 8-bit
    ("pydicom", "examples_rgb_color.dcm"),  # US RGB
    ("pydicom", "examples_ybr_color.dcm"),  # US 30-frame JPEG baseline YBR_FULL_422 cine
    ("pydicom", "image_dfl.dcm"),  # deflated explicit VR LE, 8-bit
    ("pydicom", "liver_1frame.dcm"),  # SEG, 1 frame
    ("pydicom", "liver_expb_1frame.dcm"),  # SEG, 1 frame, big endian
    ("pydicom", "rtdose.dcm"),  # RT dose 15 frames uint32, Grid Frame Offset Vector
    ("pydicom", "rtdose_1frame.dcm"),  # RT dose 1 frame
    ("pydicom", "rtdose_expb.dcm"),  # RT dose 15 frames, big endian uint32
    ("pydicom", "rtdose_expb_1frame.dcm"),  # RT dose 1 frame, big endian
    ("pydicom", "rtdose_rle.dcm"),  # RT dose 15 frames, RLE
    ("pydicom", "rtdose_rle_1frame.dcm"),  # RT dose 1 frame, RLE
    ("pydicom-data", "693_J2KR.dcm"),  # CT 512×512 JPEG 2000 lossless, padded
    ("pydicom-data", "693_UNCI.dcm"),  # CT 512×512 14-bit uncompressed, padding -2000
    ("pydicom-data", "693_UNCR.dcm"),  # same image, second export
    ("pydicom-data", "JPEG-LL.dcm"),  # NM JPEG lossless SV1, signed
    ("pydicom-data", "JPEG2000_UNC.dcm"),  # NM uncompressed source of JPEG2000.dcm
    ("pydicom-data", "JPGLosslessP14SV1_1s_1f_8b.dcm"),  # US 8-bit JPEG lossless SV1
    ("pydicom-data", "MR-SIEMENS-DICOM-WithOverlays.dcm"),  # MR with two windows (multi-valued VOI)
    ("pydicom-data", "MR2_J2KI.dcm"),  # MR 1024×1024 JPEG 2000 lossy
    ("pydicom-data", "MR2_J2KR.dcm"),  # MR 1024×1024 JPEG 2000 lossless
    ("pydicom-data", "MR2_UNCI.dcm"),  # MR 1024×1024 uncompressed
    ("pydicom-data", "MR2_UNCR.dcm"),  # same image, second export
    ("pydicom-data", "OBXXXX1A.dcm"),  # US PALETTE COLOR 8-bit
    ("pydicom-data", "OBXXXX1A_2frame.dcm"),  # US PALETTE COLOR, 2 frames
    ("pydicom-data", "OBXXXX1A_expb.dcm"),  # US PALETTE COLOR, big endian
    ("pydicom-data", "OBXXXX1A_expb_2frame.dcm"),  # US PALETTE COLOR, big endian, 2 frames
    ("pydicom-data", "OBXXXX1A_rle.dcm"),  # US PALETTE COLOR, RLE
    ("pydicom-data", "OBXXXX1A_rle_2frame.dcm"),  # US PALETTE COLOR, RLE, 2 frames
    ("pydicom-data", "RG1_J2KI.dcm"),  # CR 1955×1841 MONOCHROME1, JPEG 2000 lossy
    ("pydicom-data", "RG1_J2KR.dcm"),  # CR MONOCHROME1, JPEG 2000 lossless
    ("pydicom-data", "RG1_UNCI.dcm"),  # CR MONOCHROME1, uncompressed, window 15000/30000
    ("pydicom-data", "RG1_UNCR.dcm"),  # same image, second export
    ("pydicom-data", "RG3_J2KI.dcm"),  # CR 1760×1760 MONOCHROME1, JPEG 2000 lossy
    ("pydicom-data", "RG3_J2KR.dcm"),  # CR MONOCHROME1, JPEG 2000 lossless
    ("pydicom-data", "RG3_UNCI.dcm"),  # CR MONOCHROME1, uncompressed
    ("pydicom-data", "RG3_UNCR.dcm"),  # same image, second export
    ("pydicom-data", "SC_rgb.dcm"),  # RGB 8-bit uncompressed
    ("pydicom-data", "SC_rgb_16bit.dcm"),  # RGB 16-bit
    ("pydicom-data", "SC_rgb_16bit_2frame.dcm"),  # RGB 16-bit, 2 frames
    ("pydicom-data", "SC_rgb_2frame.dcm"),  # RGB 8-bit, 2 frames
    ("pydicom-data", "SC_rgb_32bit.dcm"),  # RGB 32-bit
    ("pydicom-data", "SC_rgb_32bit_2frame.dcm"),  # RGB 32-bit, 2 frames
    ("pydicom-data", "SC_rgb_dcmtk_ebcr_dcmd.dcm"),  # decompressed dcmtk RGB
    ("pydicom-data", "SC_rgb_dcmtk_ebcyn1_dcmd.dcm"),  # decompressed dcmtk YBR source
    ("pydicom-data", "SC_rgb_dcmtk_ebcyn2_dcmd.dcm"),  # decompressed dcmtk YBR source
    ("pydicom-data", "SC_rgb_dcmtk_ebcynp_dcmd.dcm"),  # decompressed dcmtk YBR 4:2:2 source
    ("pydicom-data", "SC_rgb_dcmtk_ebcys2_dcmd.dcm"),  # decompressed dcmtk 4:2:2 source
    ("pydicom-data", "SC_rgb_dcmtk_ebcys4_dcmd.dcm"),  # decompressed dcmtk 4:1:1 source
    ("pydicom-data", "SC_rgb_expb.dcm"),  # RGB 8-bit big endian
    ("pydicom-data", "SC_rgb_expb_16bit.dcm"),  # RGB 16-bit big endian
    ("pydicom-data", "SC_rgb_expb_16bit_2frame.dcm"),  # RGB 16-bit big endian, 2 frames
    ("pydicom-data", "SC_rgb_expb_2frame.dcm"),  # RGB 8-bit big endian, 2 frames
    ("pydicom-data", "SC_rgb_expb_32bit.dcm"),  # RGB 32-bit big endian
    ("pydicom-data", "SC_rgb_expb_32bit_2frame.dcm"),  # RGB 32-bit big endian, 2 frames
    ("pydicom-data", "SC_rgb_gdcm2k_uncompressed.dcm"),  # gdcm-decompressed RGB
    ("pydicom-data", "SC_ybr_full_uncompressed.dcm"),  # uncompressed YBR_FULL
    ("pydicom-data", "US1_J2KI.dcm"),  # US JPEG 2000 lossy YBR_ICT
    ("pydicom-data", "US1_J2KR.dcm"),  # US JPEG 2000 lossless YBR_RCT
    ("pydicom-data", "US1_UNCI.dcm"),  # US RGB uncompressed
    ("pydicom-data", "US1_UNCR.dcm"),  # same image, second export
    ("pydicom-data", "bad_sequence.dcm"),  # CT JPEG lossless SV1 with a malformed sequence
    ("pydicom-data", "color-pl.dcm"),  # US RGB, planar configuration 1
    ("pydicom-data", "color-px.dcm"),  # US RGB, planar configuration 0
    ("pydicom-data", "color3d_jpeg_baseline.dcm"),  # US 120-frame 480×640 JPEG baseline YBR_FULL_422
    ("pydicom-data", "eCT_Supplemental.dcm"),  # Enhanced CT, 2 frames, functional groups, LPS normal along -z
    ("pydicom-data", "emri_small.dcm"),  # Enhanced MR 10 frames without functional groups
    ("pydicom-data", "emri_small_RLE.dcm"),  # same, RLE
    ("pydicom-data", "emri_small_big_endian.dcm"),  # same, big endian
    ("pydicom-data", "emri_small_jpeg_2k_lossless.dcm"),  # same, JPEG 2000 lossless
    ("pydicom-data", "emri_small_jpeg_ls_lossless.dcm"),  # same, JPEG-LS lossless
    ("pydicom-data", "explicit_VR-UN.dcm"),  # CT JPEG 2000 whose elements are all VR UN
    ("pydicom-data", "gdcm-US-ALOKA-16.dcm"),  # US 16-bit PALETTE COLOR (segmented LUTs), implicit VR
    ("pydicom-data", "gdcm-US-ALOKA-16_big.dcm"),  # same, big endian
    ("pydicom-data", "liver.dcm"),  # SEG, 3 frames
    ("pydicom-data", "liver_expb.dcm"),  # SEG, 3 frames, big endian
    ("pydicom-data", "mlut_18.dcm"),  # Modality LUT Sequence
    ("pydicom-data", "vlut_04.dcm"),  # VOI LUT Sequence
    ("nibabel", "nicom/tests/data/0.dcm"),  # Siemens MR 256×256 oblique, implicit VR (mosaic header)
    ("nibabel", "nicom/tests/data/1.dcm"),  # next slice of the same series
    ("nibabel", "nicom/tests/data/decimal_rescale.dcm"),  # MR with decimal Rescale Slope
    ("nibabel", "nicom/tests/data/philips_mprage.dcm.gz"),  # Philips Enhanced MR, 176 frames, per-frame groups
    ("nibabel", "nicom/tests/data/siemens_dwi_0.dcm.gz"),  # Siemens DWI mosaic 896×896, b=0
    ("nibabel", "nicom/tests/data/siemens_dwi_1000.dcm.gz"),  # Siemens DWI mosaic 896×896, b=1000
    ("nibabel", "nicom/tests/data/slicethickness_empty_string.dcm"),  # MR JPEG 2000, empty Slice Thickness
    ("nibabel", "tests/data/0.dcm"),  # copy of nicom 0.dcm (same SOP Instance UID)
    ("nibabel", "tests/data/1.dcm"),  # copy of nicom 1.dcm
    ("pynetdicom", "CTImageStorage.dcm"),  # CT 128×128 explicit VR LE
    ("pynetdicom", "CTImageStorage_bad_meta.dcm"),  # CT with a malformed file meta group length
    ("pynetdicom", "MRImageStorage_ExplicitVRBigEndian.dcm"),  # MR 64×64 big endian
    ("pynetdicom", "MRImageStorage_JPG2000_Lossless.dcm"),  # MR 64×64 JPEG 2000 lossless
    ("pynetdicom", "RTImageStorage.dcm"),  # RT image 1024×1024, implicit VR
    ("pynetdicom", "SCImageStorage_Deflated.dcm"),  # secondary capture, deflated
    ("dicomdir", "77654033/CR1/6154"),  # CR 16×16 MONOCHROME1
    ("dicomdir", "77654033/CR2/6247"),  # CR 16×16 MONOCHROME1
    ("dicomdir", "77654033/CR3/6278"),  # CR 16×16 MONOCHROME1
    ("dicomdir", "77654033/CT2/17106"),  # CT series with a 202 mm gap, slice 1 of 4
    ("dicomdir", "77654033/CT2/17136"),  # slice 2 of 4
    ("dicomdir", "77654033/CT2/17166"),  # slice 3 of 4
    ("dicomdir", "77654033/CT2/17196"),  # slice 4 of 4
    ("dicomdir", "98892001/CT2N/6293"),  # sagittal localizer
    ("dicomdir", "98892001/CT2N/6924"),  # coronal localizer of the same series
    ("dicomdir", "98892001/CT5N/2062"),  # CT series of 5, instance numbers against the slice order
    ("dicomdir", "98892001/CT5N/2392"),  # slice of CT5N
    ("dicomdir", "98892001/CT5N/2693"),  # slice of CT5N
    ("dicomdir", "98892001/CT5N/3023"),  # slice of CT5N
    ("dicomdir", "98892001/CT5N/3353"),  # slice of CT5N
    ("dicomdir", "98892003/MR1/15820"),  # MR, each file its own series
    ("dicomdir", "98892003/MR1/4919"),  # MR, own series
    ("dicomdir", "98892003/MR1/5641"),  # MR, own series
    ("dicomdir", "98892003/MR2/15970"),  # MR localizers of 3 series and 3 orientations
    ("dicomdir", "98892003/MR2/4950"),  # MR2 localizer
    ("dicomdir", "98892003/MR2/4981"),  # MR2 localizer
    ("dicomdir", "98892003/MR2/5011"),  # MR2 localizer
    ("dicomdir", "98892003/MR2/6273"),  # MR2 localizer
    ("dicomdir", "98892003/MR2/6605"),  # MR2 localizer
    ("dicomdir", "98892003/MR2/6935"),  # MR2 localizer
    ("dicomdir", "98892003/MR700/4467"),  # MR radial series, 7 orientations
    ("dicomdir", "98892003/MR700/4528"),  # radial slice
    ("dicomdir", "98892003/MR700/4558"),  # radial slice
    ("dicomdir", "98892003/MR700/4588"),  # radial slice
    ("dicomdir", "98892003/MR700/4618"),  # radial slice
    ("dicomdir", "98892003/MR700/4648"),  # radial slice
    ("dicomdir", "98892003/MR700/4678"),  # radial slice
]

_TINY_ALPHA = sorted(
    f"TINY_ALPHA/PT000000/ST000000/SE000000/{path.name}"
    for path in _dicomdir_file("TINY_ALPHA/PT000000/ST000000/SE000000").iterdir()
)

#: Files that cannot give a model input: (source, file, error, message pattern).
BROKEN_FILES: list[tuple[str, str, type[PreprocessingError], str]] = [
    ("pydicom", "MR_truncated.dcm", InvalidDicom, r"pixel data is truncated"),  # the last 62 bytes are missing
    ("pydicom", "badVR.dcm", InvalidDicom, r"\(0028,0008\) Number Of Frames .* not an integer"),  # frames '1A'
    ("pydicom", "JPEG-lossy.dcm", InvalidDicom, r"JPEG Extended .* corrupt"),  # invalid SOS parameters
    ("pydicom", "JPEG2000-embedded-sequence-delimiter.dcm", InvalidDicom, r"JPEG 2000 .* corrupt"),  # codestream overwritten
    ("pydicom", "meta_missing_tsyntax.dcm", InvalidDicom, r"no \(0002,0010\) Transfer Syntax UID"),  # file meta without it
    ("pydicom", "no_meta.dcm", InvalidDicom, r"not a DICOM Part 10 file"),  # no preamble / DICM
    ("pydicom-data", "OT-PAL-8-face.dcm", InvalidDicom, r"not a DICOM Part 10 file"),  # ACR-NEMA style, no DICM
    ("pydicom-data", "emri_small_jpeg_2k_lossless_too_short.dcm", InvalidDicom, r"truncated"),  # ends after file meta
    ("pydicom", "nested_priv_SQ.dcm", InvalidDicom, r"\(0028,0010\) Rows .* missing"),  # pixels without Image Pixel module
    ("pydicom", "rtplan.dcm", MissingPixelData, r"no \(7FE0,0010\) Pixel Data"),  # RT plan, no image
    ("pydicom", "rtplan_truncated.dcm", MissingPixelData, r"no \(7FE0,0010\) Pixel Data"),  # truncated RT plan
    ("pydicom", "reportsi.dcm", MissingPixelData, r"no \(7FE0,0010\) Pixel Data"),  # structured report
    ("pydicom", "waveform_ecg.dcm", MissingPixelData, r"no \(7FE0,0010\) Pixel Data"),  # ECG waveform
    ("pydicom", "empty_charset_LEI.dcm", MissingPixelData, r"no \(7FE0,0010\) Pixel Data"),  # header-only dataset
] + [
    ("dicomdir", name, MissingPixelData, r"no \(7FE0,0010\) Pixel Data")  # TINY_ALPHA: CT headers without pixels
    for name in _TINY_ALPHA
]


@functools.lru_cache(maxsize=None)
def _header(source: str, name: str) -> Dataset:
    return pydicom.dcmread(io.BytesIO(_read(source, name)), stop_before_pixels=True)


def _is_color(source: str, name: str) -> bool:
    return str(_header(source, name).get("PhotometricInterpretation", "")).strip() not in ("MONOCHROME1", "MONOCHROME2")


def _has_voi(source: str, name: str) -> bool:
    header = _header(source, name)
    return not _is_color(source, name) and (
        ("WindowCenter" in header and "WindowWidth" in header) or bool(header.get("VOILUTSequence"))
    )


def _has_window(source: str, name: str) -> bool:
    header = _header(source, name)
    return not _is_color(source, name) and "WindowCenter" in header and "WindowWidth" in header


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    tables = {
        "real_image": REAL_IMAGES,
        "real_grayscale_image": [row for row in REAL_IMAGES if not _is_color(*row)],
        "real_color_image": [row for row in REAL_IMAGES if _is_color(*row)],
        "real_voi_image": [row for row in REAL_IMAGES if _has_voi(*row)],
        "real_window_image": [row for row in REAL_IMAGES if _has_window(*row)],
    }
    for fixture, rows in tables.items():
        if fixture in metafunc.fixturenames:
            files = [RealFile(source, name) for source, name in rows]
            metafunc.parametrize(fixture, files, ids=[str(f) for f in files])
    if "broken_file" in metafunc.fixturenames:
        metafunc.parametrize(
            "broken_file",
            [(RealFile(source, name), error, pattern) for source, name, error, pattern in BROKEN_FILES],
            ids=[str(RealFile(source, name)) for source, name, _, _ in BROKEN_FILES],
        )


@pytest.fixture(scope="session")
def real_file():
    """``real_file(source, name)``: a :class:`RealFile` of the tables' sources."""
    return RealFile


@pytest.fixture(scope="session")
def real_images() -> list[RealFile]:
    """All rows of :data:`REAL_IMAGES`."""
    return [RealFile(source, name) for source, name in REAL_IMAGES]


@pytest.fixture(scope="session")
def dicomdir_series():
    """``dicomdir_series("98892001/CT5N")``: the sorted file paths of one pydicom dicomdirtests folder."""

    def paths(folder: str) -> list[Path]:
        return sorted(_dicomdir_file(folder).iterdir())

    return paths


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260101)


@pytest.fixture(scope="session")
def sitk_reference():
    """``sitk_reference(directory_or_file)``: SimpleITK's reading of a series folder (files
    sorted by GDCM's own IPP sorter) or of one file, as ``(array, affine)`` in our
    convention — array (d, h, w), affine (d, h, w, 1) → LPS mm — and the image itself."""
    import SimpleITK as sitk

    def read(location: Path):
        if location.is_dir():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(location)))
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(location))
        return sitk.GetArrayFromImage(image), itk_affine(image), image

    return read


def itk_affine(image) -> np.ndarray:
    """An ITK image's index (x, y, z) → LPS affine, re-indexed as (d, h, w) = (z, y, x)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    affine[:3, 3] = image.GetOrigin()
    return affine[:, [2, 1, 0, 3]]


@pytest.fixture(scope="session")
def sitk_affine():
    """``sitk_affine(image)``: :func:`itk_affine` for tests that run SimpleITK filters."""
    return itk_affine


@pytest.fixture
def write_series(tmp_path):
    """``write_series(datasets)``: save Datasets as files in a fresh folder; returns it."""
    counter = iter(range(10**6))

    def write(datasets) -> Path:
        folder = tmp_path / f"series{next(counter)}"
        folder.mkdir()
        for i, ds in enumerate(datasets):
            ds.save_as(folder / f"{i:04d}.dcm", enforce_file_format=True)
        return folder

    return write
