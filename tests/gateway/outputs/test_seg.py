"""The SEG of a result: UIDs derived from the result (the same result, the same SEG), segment
codes from the card or the built-in table, and series with the usual gaps (a missing slice,
uneven spacing) that dciodvfy accepts."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from contract.codes import Code, LabelCodes
from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume
from gateway.outputs.seg import seg_object, segmentation
from preprocessing import plan_series
from devtools.dicom3tools import dciodvfy_errors

LABELS = ["background", "nodule", "liver", "gizmo"]


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    volume, _ = chest_volume(np.random.default_rng(1), 8, size=48)
    paths = write_ct_series(tmp_path_factory.mktemp("ct"), volume, spacing_mm=(2.5, 1.5, 1.5))
    datasets = [pydicom.dcmread(p) for p in paths]
    labels_map = np.zeros((8, 48, 48), dtype=np.uint8)
    labels_map[2:5, 10:20, 10:20] = 1
    labels_map[5:7, 30:40, 5:15] = 3  # "gizmo"; no "liver" voxels
    return datasets, labels_map


def test_the_same_result_gives_the_same_uids_and_another_result_other_ones(series) -> None:
    datasets, labels_map = series
    frames = plan_series(datasets).frames
    first = pydicom.dcmread(io.BytesIO(segmentation(frames, labels_map, LABELS, "m", "1")))
    again = pydicom.dcmread(io.BytesIO(segmentation(plan_series(datasets).frames, labels_map.copy(), LABELS, "m", "1")))
    assert (first.SeriesInstanceUID, first.SOPInstanceUID) == (again.SeriesInstanceUID, again.SOPInstanceUID)
    assert first.SOPInstanceUID.startswith("2.25.")
    changed = labels_map.copy()
    changed[0, 0, 0] = 1
    other = seg_object(frames, changed, LABELS, "m", "1").dataset
    assert other.SeriesInstanceUID == first.SeriesInstanceUID  # the model's SEGs of one series: one series
    assert other.SOPInstanceUID != first.SOPInstanceUID
    assert seg_object(frames, labels_map, LABELS, "m", "2").dataset.SeriesInstanceUID != first.SeriesInstanceUID


def test_segments_are_numbered_by_present_label_and_coded(series) -> None:
    datasets, labels_map = series
    seg = seg_object(plan_series(datasets).frames, labels_map, LABELS, "m", "1")
    assert seg.segment_numbers == {1: 1, 3: 2}
    segments = {item.SegmentNumber: item for item in seg.dataset.SegmentSequence}
    assert segments[1].SegmentLabel == "nodule"
    assert segments[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "27925004"  # SCT Nodule
    assert segments[2].SegmentLabel == "gizmo"
    assert segments[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "404684003"  # SCT Finding: not in the table


def test_the_cards_codes_win_over_the_table(series) -> None:
    datasets, labels_map = series
    ours = LabelCodes(Code("SCT", "49755003", "Morphologically abnormal structure"), Code("SCT", "4147007", "Mass"))
    seg = seg_object(plan_series(datasets).frames, labels_map, LABELS, "m", "1", {"nodule": ours}).dataset
    item = seg.SegmentSequence[0]
    assert (item.SegmentedPropertyTypeCodeSequence[0].CodeValue, item.SegmentedPropertyTypeCodeSequence[0].CodeMeaning) == ("4147007", "Mass")


@pytest.mark.parametrize("gap", ["missing slice", "uneven spacing"])
def test_a_series_with_the_usual_gaps_gives_a_valid_seg(series, tmp_path, gap) -> None:
    datasets, labels_map = series
    datasets = [pydicom.dcmread(io.BytesIO(_bytes(ds))) for ds in datasets]
    if gap == "missing slice":
        del datasets[4]
        labels_map = np.delete(labels_map, 4, axis=0)
    else:
        for ds in datasets[5:]:
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + 1.1]
    frames = plan_series(datasets).frames
    content = segmentation(frames, labels_map, LABELS, "m", "1")
    assert dciodvfy_errors(content, tmp_path) == []
    seg = pydicom.dcmread(io.BytesIO(content))
    positions = {round(float(item.PlanePositionSequence[0].ImagePositionPatient[2]), 3) for item in seg.PerFrameFunctionalGroupsSequence}
    assert positions == {round(float(frames[d].header.ImagePositionPatient[2]), 3) for d in np.flatnonzero(labels_map.any(axis=(1, 2)))}


def _bytes(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
