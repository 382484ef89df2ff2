"""``format=sc``: a valid DICOM Secondary Capture of the mask over the windowed source, filed in
the source's study, with the very pixels of ``format=png`` and UIDs that a result keeps."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_windowing

from contract import ModelCard, ModelInput, ModelOutput
from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume
from devtools.testdata import enhanced_ct
from gateway.errors import OutputUnavailable
from gateway.outputs import png, sc
from gateway.outputs.encoder import Answer
from gateway.outputs.overlay import CLASS_COLOURS
from gateway.tasks.segmentation import SegmentationResult
from preprocessing import PreprocessingSpec, plan_series
from preprocessing.spec import WindowSpec
from devtools.dicom3tools import dciodvfy_errors

LABELS = ["background", "nodule", "vessel"]
WINDOW = (-600.0, 1500.0)  # center, width in HU


def _card(name: str = "ct_seg") -> ModelCard:
    return ModelCard(
        name=name, task="segmentation-3d", description="", inputs=[ModelInput("image", "float32", [-1, 1, 6, 64, 64])],
        outputs=[ModelOutput("labels", "segmentation_labels", LABELS)],
        preprocessing=PreprocessingSpec(window=WindowSpec(center=WINDOW[0], width=WINDOW[1])), max_batch_size=1,
        export_report_digest="",
    )


def _answer(datasets, labels_map: np.ndarray, slice_index: int | None = None, name: str = "ct_seg") -> Answer:
    plan = plan_series(datasets)
    result = SegmentationResult(
        model_version="3", labels=LABELS, labels_map=labels_map, affine_lps=plan.affine_lps, frames=tuple(plan.frames),
        measurements=[], applied={}, patches=1, batches=1, drift=[],
    )
    return Answer(_card(name), result, {}, "request-1", slice_index)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A 6-slice CT phantom series (slice order = file order) and a two-class label map: the
    phantom's nodules as class 1, a bar as class 2 on slice 2 (where a nodule is too)."""
    volume, mask = chest_volume(np.random.default_rng(0), 6, size=64, nodules=2)
    paths = write_ct_series(tmp_path_factory.mktemp("ct"), volume, spacing_mm=(2.5, 1.4, 1.4), shuffle_seed=None)
    datasets = [pydicom.dcmread(p) for p in paths]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    labels_map = mask.astype(np.uint8)
    labels_map[2, 20:26, 40:46] = 1
    labels_map[2, 40:44, 10:30] = 2
    return datasets, labels_map


def test_the_capture_is_a_valid_rgb_secondary_capture_in_the_source_study(series, tmp_path) -> None:
    datasets, labels_map = series
    path = tmp_path / "sc.dcm"
    path.write_bytes(sc.encoder.encode(_answer(datasets, labels_map)).content)
    assert dciodvfy_errors(path, tmp_path) == []

    capture = pydicom.dcmread(path)
    areas = (labels_map > 0).sum(axis=(1, 2))
    source = datasets[int(np.argmax(areas))]  # no slice= asked: the largest foreground area
    assert capture.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert (capture.PhotometricInterpretation, capture.SamplesPerPixel, capture.BitsAllocated) == ("RGB", 3, 8)
    assert (capture.Rows, capture.Columns) == (source.Rows, source.Columns)  # one frame of the source's size
    assert capture.BurnedInAnnotation == "YES"
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber"):
        assert str(capture.get(keyword, "")) == str(source.get(keyword, "")), keyword
    assert capture.SeriesInstanceUID != source.SeriesInstanceUID
    assert capture.SeriesNumber == int(source.get("SeriesNumber") or 0) + sc.SERIES_NUMBER_OFFSET
    assert capture.InstanceNumber == int(np.argmax(areas)) + 1
    [reference] = capture.SourceImageSequence
    assert (reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID) == (source.SOPClassUID, source.SOPInstanceUID)
    assert capture.PatientOrientation == ["L", "P"]  # axial: rows run to the patient's left, columns to posterior
    assert "NOT FOR DIAGNOSTIC USE" in capture.ImageComments and "NOT FOR DIAGNOSTIC USE" in capture.DerivationDescription
    assert "Legend: red = nodule; green = vessel." in capture.ImageComments  # every foreground class and its colour


def test_pixels_are_the_pngs_grey_outside_the_mask_and_the_class_blend_inside(series) -> None:
    datasets, labels_map = series
    answer = _answer(datasets, labels_map, slice_index=2)
    pixels = pydicom.dcmread(io.BytesIO(sc.encoder.encode(answer).content)).pixel_array
    png_pixels = np.asarray(Image.open(io.BytesIO(png.encoder.encode(answer).content)))
    np.testing.assert_array_equal(pixels, png_pixels)  # one blending for both formats

    # Outside the mask: the source windowed as pydicom windows it (its output range mapped to 0..255).
    ds = datasets[2]
    windowed = pydicom.Dataset()
    windowed.update({"WindowCenter": WINDOW[0], "WindowWidth": WINDOW[1], "BitsStored": 16, "PixelRepresentation": 1, "PhotometricInterpretation": "MONOCHROME2"})
    reference = (apply_windowing(apply_modality_lut(ds.pixel_array, ds), windowed).astype(np.float64) + 32768) / 65535 * 255
    background = labels_map[2] == 0
    assert np.abs(pixels[background].astype(float) - reference[background][:, None]).max() <= 1.0
    assert (pixels[background][:, 0] == pixels[background][:, 1]).all()  # grey

    # Inside: 55 % grey + 45 % of the class colour (red for class 1, green for class 2).
    for value in (1, 2):
        where = labels_map[2] == value
        assert where.any()
        blend = 0.55 * reference[where][:, None] + 0.45 * CLASS_COLOURS[value - 1]
        assert np.abs(pixels[where].astype(float) - blend).max() <= 1.0


def test_the_same_result_encoded_twice_is_the_same_object(series) -> None:
    datasets, labels_map = series
    first = pydicom.dcmread(io.BytesIO(sc.encoder.encode(_answer(datasets, labels_map)).content))
    again = pydicom.dcmread(io.BytesIO(sc.encoder.encode(_answer(datasets, labels_map.copy())).content))
    assert (first.SeriesInstanceUID, first.SOPInstanceUID) == (again.SeriesInstanceUID, again.SOPInstanceUID)
    assert pydicom.uid.UID(first.SOPInstanceUID).is_valid

    other_slice = pydicom.dcmread(io.BytesIO(sc.encoder.encode(_answer(datasets, labels_map, slice_index=0)).content))
    assert other_slice.SeriesInstanceUID == first.SeriesInstanceUID  # captures of one result: one series
    assert other_slice.SOPInstanceUID != first.SOPInstanceUID
    changed = labels_map.copy()
    changed[0, 0, 0] = 1
    other_result = pydicom.dcmread(io.BytesIO(sc.encoder.encode(_answer(datasets, changed)).content))
    assert {other_result.SeriesInstanceUID, other_result.SOPInstanceUID}.isdisjoint({first.SeriesInstanceUID, first.SOPInstanceUID})
    other_model = pydicom.dcmread(io.BytesIO(sc.encoder.encode(_answer(datasets, labels_map, name="other")).content))
    assert other_model.SOPInstanceUID != first.SOPInstanceUID


def test_a_frame_of_an_enhanced_multiframe_source_is_referenced_by_frame_number(tmp_path) -> None:
    volume, mask = chest_volume(np.random.default_rng(1), 4, size=64, nodules=1)
    source = enhanced_ct(volume, pixel_spacing_mm=(1.4, 1.4), distances_mm=[0, 2.5, 5.0, 7.5], rescale_slopes=[1.0] * 4, frame_order=[2, 0, 3, 1])
    source.PatientName, source.PatientID, source.StudyDate = "Doe^Jane", "MRN-7", "20260101"
    stored = tmp_path / "enhanced.dcm"
    source.save_as(stored, enforce_file_format=True)
    labels_map = mask.astype(np.uint8)
    answer = _answer([pydicom.dcmread(stored)], labels_map)
    path = tmp_path / "sc.dcm"
    path.write_bytes(sc.encoder.encode(answer).content)
    assert dciodvfy_errors(path, tmp_path) == []

    capture = pydicom.dcmread(path)
    index = int(np.argmax((labels_map > 0).sum(axis=(1, 2))))
    [reference] = capture.SourceImageSequence
    assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert reference.ReferencedFrameNumber == [2, 0, 3, 1].index(index) + 1  # the stored frame of that slice
    assert (str(capture.PatientName), capture.PatientID, capture.StudyInstanceUID) == ("Doe^Jane", "MRN-7", source.StudyInstanceUID)


def test_a_source_without_a_study_instance_uid_is_refused_before_the_model_runs(series) -> None:
    datasets, _ = series
    stripped = [pydicom.dcmread(io.BytesIO(_bytes(ds))) for ds in datasets]
    del stripped[3].StudyInstanceUID
    with pytest.raises(OutputUnavailable, match=r"instance 4 has no \(0020,000D\) Study Instance UID") as refused:
        sc.check_sources(plan_series(stripped))
    assert refused.value.status_code == 422
    sc.check_sources(plan_series(datasets))  # the whole series: nothing missing


def _bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_patient_names_in_the_sources_character_set_arrive_as_sent(series) -> None:
    datasets, labels_map = series
    latin1 = []
    for ds in datasets:
        copy = pydicom.dcmread(io.BytesIO(_bytes(ds)))
        copy.SpecificCharacterSet, copy.PatientName = "ISO_IR 100", "Müller^Jürgen"
        latin1.append(pydicom.dcmread(io.BytesIO(_bytes(copy))))
    capture = pydicom.dcmread(io.BytesIO(sc.encoder.encode(_answer(latin1, labels_map)).content))
    assert (capture.SpecificCharacterSet, str(capture.PatientName)) == ("ISO_IR 100", "Müller^Jürgen")
