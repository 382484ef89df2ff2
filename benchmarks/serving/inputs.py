"""The bench's inputs: real DICOM as bodies the gateway and the baseline both accept, and what
a correct answer for each model contains.

The 2D classifier gets real CT slices written by others; the 3D segmenter gets phantom chest-CT
series, each exactly one network input (32 × 96² at 2 mm), so that both sliding windows run one
patch and the comparison is about serving, not tiling.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .load import Payload
from .variants import CLASSIFIER


def multipart_form(files: Sequence[tuple[str, bytes]], field_name: str = "files") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one ``application/dicom`` file field per file."""
    boundary = "medserve-bench-" + os.urandom(8).hex()
    chunks = []
    for filename, data in files:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            "Content-Type: application/dicom\r\n\r\n".encode()
        )
        chunks += [data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def classifier_payloads() -> list[Payload]:
    """Two real CT slices written by others: pydicom-data's 512×512 ``693_UNCI.dcm`` and
    pydicom's 128×128 ``CT_small.dcm``."""
    from devtools.testdata import pydicom_test_file

    return [Payload(name, pydicom_test_file(name).read_bytes(), "application/dicom") for name in ("693_UNCI.dcm", "CT_small.dcm")]


def series_payloads(directory: Path, count: int = 2, slices: int = 32, size: int = 96, spacing_mm: float = 2.0) -> list[Payload]:
    """``count`` phantom chest-CT series (``devtools.dicomgen.write_ct_series``, shuffled
    instance order), each ``slices`` × ``size``² at ``spacing_mm``, as multipart/form-data."""
    from devtools.dicomgen import write_ct_series
    from devtools.phantoms import chest_volume

    payloads = []
    for k in range(count):
        rng = np.random.default_rng(100 + k)
        volume, _ = chest_volume(rng, slices, size=size, nodules=2, field_of_view_mm=size * spacing_mm)
        paths = write_ct_series(directory / f"series_{k}", volume, spacing_mm=(spacing_mm,) * 3, shuffle_seed=k)
        body, content_type = multipart_form([(p.name, p.read_bytes()) for p in paths])
        payloads.append(Payload(f"phantom series {k} ({slices}×{size}×{size}, {spacing_mm:g} mm)", body, content_type))
    return payloads


def payloads_for(model: str, work: Path) -> list[Payload]:
    """The inputs of ``model``: the CT slices for the classifier, phantom series (written
    under ``work``) for the 3D segmenter."""
    return classifier_payloads() if model == CLASSIFIER else series_payloads(work / "inputs")


def answer_check(model: str) -> Callable[[bytes], bool]:
    """A 200 answer counts only when it holds what this model answers: the classifier's
    ``top_label``, the segmenter's ``nodule`` measurement."""
    key = b'"top_label"' if model == CLASSIFIER else b'"nodule"'
    return lambda body: key in body
