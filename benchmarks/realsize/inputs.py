"""The real-size bench's inputs: real CT slices for the 2D classifier, and one whole
300×512×512 CT series as a multipart body and as a ZIP for the 3D segmenter."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from benchmarks.serving.inputs import classifier_payloads, multipart_form
from benchmarks.serving.load import Payload


@dataclass(frozen=True)
class Workload:
    """One workload's requests: what the servers receive (``payloads``) and, for each payload
    in the same order, the bodies the script reads (``files``: DICOM files, or the one ZIP
    of a zipped series)."""

    model: str
    payloads: list[Payload]
    files: list[list[bytes]]
    description: str


def slices_workload(model: str) -> Workload:
    payloads = classifier_payloads()
    return Workload(model, payloads, [[p.body] for p in payloads], ", ".join(p.name for p in payloads))


def series_files(slices: int = 300, size: int = 512, pixel_mm: float = 0.625, slice_mm: float = 1.0, seed: int = 17) -> list[bytes]:
    """A phantom chest CT (:func:`devtools.phantoms.chest_volume`, 3 nodules) as ``slices`` Part 10
    files of ``size``² 16-bit pixels (:func:`devtools.testdata.ct_series`, shuffled order)."""
    from devtools.phantoms import chest_volume
    from devtools.testdata import ct_series

    volume, _ = chest_volume(np.random.default_rng(seed), slices, size=size, nodules=3, field_of_view_mm=size * pixel_mm)
    datasets = ct_series(volume, pixel_spacing_mm=(pixel_mm, pixel_mm), distances_mm=[slice_mm * k for k in range(slices)])
    del volume
    files = []
    for ds in datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def zip_body(files: list[bytes]) -> bytes:
    """The files as one ZIP (deflated at level 1, as a quick PACS export writes them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for k, data in enumerate(files):
            archive.writestr(f"series/IM{k:05d}.dcm", data)
    return buffer.getvalue()


def series_workloads(model: str, slices: int = 300, size: int = 512) -> tuple[Workload, Workload]:
    """The same series twice: as multipart/form-data and as application/zip."""
    files = series_files(slices, size)
    megabytes = sum(map(len, files)) / 1e6
    body, content_type = multipart_form([(f"IM{k:05d}.dcm", data) for k, data in enumerate(files)])
    name = f"CT series {slices}×{size}×{size} ({megabytes:.0f} MB)"
    multipart = Workload(model, [Payload(f"{name}, multipart", body, content_type)], [files], f"{name} as multipart/form-data")
    archive = zip_body(files)
    zipped = Workload(model, [Payload(f"{name}, ZIP", archive, "application/zip")], [[archive]], f"{name} as a ZIP ({len(archive) / 1e6:.0f} MB)")
    return multipart, zipped
