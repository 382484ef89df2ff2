"""The real-size bench's pieces that need no server: its inputs, its target and its Markdown block."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom

from benchmarks.realsize.deepbet import CASCADE
from benchmarks.realsize.inputs import series_workloads
from benchmarks.realsize.report import BEGIN, END, write_markdown
from benchmarks.realsize.run import targets
from benchmarks.script_baseline import zip_members
from devtools.zoo.realsize import SEGMENTER_3D


def test_the_series_is_sent_as_multipart_and_as_a_zip_of_the_same_files() -> None:
    multipart, zipped = series_workloads(SEGMENTER_3D, slices=4, size=32)

    files = multipart.files[0]
    assert zipped.files[0] == [zipped.payloads[0].body]  # script-zip reads the ZIP the gateway receives
    assert [pydicom.dcmread(io.BytesIO(f)).Rows for f in files] == [32] * 4
    with zipfile.ZipFile(io.BytesIO(zipped.payloads[0].body)) as archive:
        assert sorted(archive.read(name) for name in archive.namelist()) == sorted(files)
    assert zip_members(zipped.payloads[0].body) == files  # in archive order, which is the files' order
    assert multipart.payloads[0].content_type.startswith("multipart/form-data; boundary=")
    assert zipped.payloads[0].content_type == "application/zip"


def _cell(variant: str, p50_ms: float, model: str = SEGMENTER_3D) -> dict:
    return {"model": model, "variant": variant, "concurrency": 1, "load": {"p50_ms": p50_ms}}


def test_the_target_is_served_p50_over_the_script_p50_for_the_3d_series() -> None:
    found = targets([_cell("script", 1000.0), _cell("served", 1100.0), _cell("served-zip", 1300.0), _cell("script-zip", 1200.0)])

    assert [(t["target"].split(" at ")[0], t["value"], t["met"]) for t in found] == [
        ("(b) served p50 ≤ 1.2× script's", 1.1, True),
        ("(b) served-zip p50 ≤ 1.2× script-zip's", 1.083, True),  # the same ZIP bytes on both sides
        ("(b) served-zip p50 ≤ 1.2× script's", 1.3, False),  # against files already unpacked
    ]


def test_the_deepbet_target_is_its_served_p50_over_its_script_p50() -> None:
    found = targets([_cell("script", 2000.0, CASCADE), _cell("served", 2500.0, CASCADE), _cell("eager", 1500.0, CASCADE)])

    assert [(t["target"], t["value"], t["met"]) for t in found] == [("(c) served p50 ≤ 1.2× script's at concurrency 1", 1.25, False)]


def test_the_generated_block_is_replaced_and_the_text_around_it_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nhand-written\n")

    write_markdown(doc, "first\n")
    write_markdown(doc, "second\n")

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written\n")
    assert text.count(BEGIN) == text.count(END) == 1
    assert "second\n" in text and "first" not in text
