"""The seed files: real DICOM written by scanners and toolkits, shipped inside installed
wheels (pydicom, pydicom-data, nibabel, pynetdicom), read offline (see DATA.md)."""

from __future__ import annotations

import functools
import gzip
import io
from pathlib import Path

import pydicom
from pydicom.dataset import FileDataset

from devtools.testdata import pydicom_test_file, pynetdicom_test_file

#: Single-frame, uncompressed, from four sources (explicit, implicit, big-endian; CT and MR).
NATIVE = (
    "CT_small.dcm",  # pydicom: CT 128x128 signed 16-bit
    "693_UNCI.dcm",  # pydicom-data: CT 512x512, 16/14 bit, no FrameOfReferenceUID
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "pynetdicom:CTImageStorage.dcm",
    "nibabel:0.dcm",  # Siemens MR 256x256
    "nibabel:decimal_rescale.dcm",
    "nibabel:slicethickness_empty_string.dcm",
    "rtdose.dcm",  # multi-frame dose grid
)
#: Encapsulated pixel data, by codec family.
ENCAPSULATED = {
    "rle": ("MR_small_RLE.dcm", "emri_small_RLE.dcm", "SC_rgb_rle.dcm"),
    "jpeg2000": ("693_J2KI.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    "jpegls": ("MR_small_jpeg_ls_lossless.dcm",),
    "jpeg": ("SC_rgb_jpeg_dcmtk.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "examples_ybr_color.dcm"),
}
#: Enhanced multi-frame objects with functional groups.
ENHANCED = ("emri_small.dcm", "eCT_Supplemental.dcm", "nibabel:philips_mprage.dcm.gz")
#: Broken on purpose by their authors.
BROKEN = ("MR_truncated.dcm", "badVR.dcm", "JPEG-lossy.dcm")


def locate(name: str) -> Path:
    """``name``, ``pynetdicom:name`` or ``nibabel:name`` → the installed file."""
    source, _, file = name.rpartition(":")
    if source == "pynetdicom":
        return pynetdicom_test_file(file)
    if source == "nibabel":
        import nibabel

        return Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / file
    return pydicom_test_file(file)


class Corpus:
    """Seed bytes (read once) and fresh parsed copies of them (one per mutation)."""

    native = NATIVE
    encapsulated = ENCAPSULATED
    enhanced = ENHANCED
    broken = BROKEN

    @functools.lru_cache(maxsize=None)
    def bytes(self, name: str) -> bytes:
        data = locate(name).read_bytes()
        return gzip.decompress(data) if name.endswith(".gz") else data

    def dataset(self, name: str) -> FileDataset:
        return pydicom.dcmread(io.BytesIO(self.bytes(name)), force=True)

    @property
    def all_images(self) -> tuple[str, ...]:
        """Every image seed but the 23 MB Philips volume (kept to the enhanced family: cost)."""
        return self.native + tuple(n for names in self.encapsulated.values() for n in names) + self.enhanced[:2]


@functools.lru_cache(maxsize=1)
def corpus() -> Corpus:
    return Corpus()
