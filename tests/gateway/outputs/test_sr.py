"""``format=sr``: a TID 1500 measurement report that dciodvfy accepts and highdicom reads back
value for value — findings with volume, axes and HU referencing the SEG made from the same
result, class probabilities of a classification — with UIDs that stay the same when the same
result is encoded again."""

from __future__ import annotations

import io
from types import SimpleNamespace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from contract import ModelCard, ModelOutput, OutputMeaning, Task
from contract.codes import Code, LabelCodes
from devtools.dicomgen import ct_dataset, write_ct_series
from gateway.outputs.encoder import Answer
from gateway.outputs.findings import find
from gateway.outputs.registry import OutputFormat, encode
from gateway.outputs.seg import segmentation
from gateway.outputs.sr import classification_report, report_bytes, segmentation_report
from gateway.tasks.classification import ClassificationResult, InstanceClassification
from preprocessing import open_instance, plan_series

from devtools.dicom3tools import dciodvfy_errors

LABELS = ["background", "nodule", "liver"]
LIVER = LabelCodes(Code("SCT", "91723000", "Anatomical Structure"), Code("SCT", "10200004", "Liver"), Code("SCT", "10200004", "Liver"))


def _card(task: Task, labels: list[str], meaning: OutputMeaning, codes_: dict | None = None) -> ModelCard:
    output = ModelOutput("out", meaning, labels, None, "uint8" if meaning == OutputMeaning.SEGMENTATION_LABELS else "float32", None, codes_ or {})
    return SimpleNamespace(name="ct_seg", task=task, outputs=[output])


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """A CT series with two nodules (+200 HU) and a liver blob, as a segmentation result."""
    rng = np.random.default_rng(5)
    volume = rng.normal(0.0, 25.0, size=(10, 40, 40)).round()
    labels_map = np.zeros(volume.shape, dtype=np.uint8)
    labels_map[2:5, 5:12, 5:14] = 1
    labels_map[6:8, 25:29, 25:28] = 1
    labels_map[1:9, 20:35, 2:10] = 2
    volume[labels_map == 1] += 200.0
    paths = write_ct_series(tmp_path_factory.mktemp("ct"), volume.astype(np.float32), spacing_mm=(2.0, 0.7, 0.7))
    plan = plan_series([pydicom.dcmread(p) for p in paths])
    result = SimpleNamespace(
        model_version="7", labels=LABELS, labels_map=labels_map, affine_lps=plan.affine_lps, frames=plan.frames, applied={}
    )
    card = _card(Task.SEGMENTATION_3D, LABELS, OutputMeaning.SEGMENTATION_LABELS, {"liver": LIVER})
    return Answer(card, result, {}, "r1"), plan


def _value(measurements, derivation=None) -> float:
    (measurement,) = [m for m in measurements if derivation is None or m.derivation == derivation]
    return measurement.value


def test_every_finding_round_trips_through_highdicom(segmented, tmp_path) -> None:
    answer, plan = segmented
    sr, seg = segmentation_report(answer)
    content = report_bytes(sr)
    assert dciodvfy_errors(content, tmp_path) == []

    read = hd.sr.srread(io.BytesIO(content))
    assert read.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    report = read.content
    groups = report.get_volumetric_roi_measurement_groups()
    findings = find(answer.result.labels_map, plan.affine_lps, LABELS, plan.frames)
    assert [g.tracking_identifier for g in groups] == ["nodule 1", "nodule 2", "liver 1"]
    assert len({g.tracking_uid for g in groups}) == 3
    for group, finding in zip(groups, findings):
        assert _value(group.get_measurements(name=codes.SCT.Volume)) == pytest.approx(finding.volume_ml)
        assert _value(group.get_measurements(name=codes.SCT.LongAxis)) == pytest.approx(finding.long_axis_mm)
        assert _value(group.get_measurements(name=codes.SCT.ShortAxis)) == pytest.approx(finding.short_axis_mm)
        intensity = group.get_measurements(name=codes.DCM.AttenuationCoefficient)
        assert _value(intensity, codes.SCT.Mean) == pytest.approx(finding.mean)
        assert _value(intensity, codes.SCT.Maximum) == pytest.approx(finding.maximum)
        assert intensity[0].unit == hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")
        assert group.get_measurements(name=codes.SCT.Volume)[0].unit.value == "ml"
        segment = group.referenced_segment
        assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        number = {1: 1, 2: 2}[finding.label_value]
        assert segment.referenced_segment_numbers == [number]
        assert {image.referenced_sop_instance_uid for image in segment.source_images_for_segmentation} <= {f.header.SOPInstanceUID for f in plan.frames}
        assert seg.SegmentSequence[number - 1].SegmentLabel == finding.label
        names = [item.TextValue for item in _items(group) if item.ConceptNameCodeSequence[0].CodeValue == "111001"]
        versions = [item.TextValue for item in _items(group) if item.ConceptNameCodeSequence[0].CodeValue == "111003"]
        assert set(names) == {"ct_seg"} and set(versions) == {"7"} and len(names) >= 6  # the group and each measurement
    nodule, _, liver = groups
    assert nodule.finding_type == codes.SCT.Nodule and nodule.finding_category == codes.SCT.MorphologicallyAbnormalStructure
    assert liver.finding_type == hd.sr.CodedConcept("10200004", "SCT", "Liver")  # the card's codes
    assert [site.value.value for site in liver.finding_sites] == ["10200004"] and nodule.finding_sites == []
    assert findings[0].mean > 150 and findings[2].mean < 50  # the nodules are the bright ones

    (observer,) = report.get_observer_contexts(observer_type=codes.DCM.Device)
    device = observer.observer_identifying_attributes
    assert (device.name, device.model_name) == ("medserve", "ct_seg")
    (library_item,) = [item for item in _items(read.ContentSequence) if item.ConceptNameCodeSequence[0].CodeValue == "111028"]
    library = {item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for item in _items(library_item.ContentSequence) if item.ValueType == "IMAGE"}
    assert {f.header.SOPInstanceUID for f in plan.frames} <= library
    evidence = {i.ReferencedSOPInstanceUID for s in read.CurrentRequestedProcedureEvidenceSequence for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert seg.SOPInstanceUID in evidence
    assert read.StudyInstanceUID == plan.frames[0].header.StudyInstanceUID


def _items(sequence):
    """Every content item under ``sequence``, depth first."""
    for item in sequence:
        yield item
        if "ContentSequence" in item:
            yield from _items(item.ContentSequence)


def test_the_same_result_gives_the_same_sr_and_seg(segmented) -> None:
    answer, _ = segmented
    first, seg = segmentation_report(answer)
    again, _ = segmentation_report(answer)
    assert (first.SeriesInstanceUID, first.SOPInstanceUID) == (again.SeriesInstanceUID, again.SOPInstanceUID)
    uids = [[g.tracking_uid for g in hd.sr.srread(io.BytesIO(report_bytes(sr))).content.get_volumetric_roi_measurement_groups()] for sr in (first, again)]
    assert uids[0] == uids[1] and len(set(uids[0])) == 3
    result = answer.result
    alone = pydicom.dcmread(io.BytesIO(segmentation(result.frames, result.labels_map, result.labels, "ct_seg", "7", {"liver": LIVER})))
    assert alone.SOPInstanceUID == seg.SOPInstanceUID  # format=seg gives the SEG the SR references


def test_the_registry_answers_sr_as_dicom(segmented) -> None:
    answer, _ = segmented
    response = encode(OutputFormat.SR, answer.card, answer.result, {}, "r1")
    assert response.media_type == "application/dicom"
    assert response.headers["Content-Disposition"] == 'attachment; filename="ct_seg-sr.dcm"'
    assert pydicom.dcmread(io.BytesIO(response.body)).Modality == "SR"


def test_a_classification_reports_each_class_probability_and_the_predicted_label(tmp_path) -> None:
    buffer = io.BytesIO()
    ct_dataset(np.zeros((32, 32), dtype=np.float32), pixel_spacing_mm=(0.7, 0.7), slice_thickness_mm=2.0).save_as(buffer, enforce_file_format=True)
    instance = open_instance(buffer.getvalue())
    probabilities = [("nodule", 0.8125), ("normal", 0.1875)]
    result = ClassificationResult("3", [InstanceClassification(str(instance.header.SOPInstanceUID), probabilities, {}, instance)])
    card = _card(Task.CLASSIFICATION, ["normal", "nodule"], OutputMeaning.CLASS_PROBABILITIES)
    sr = classification_report(Answer(card, result, {}, "r1"))
    content = report_bytes(sr)
    assert dciodvfy_errors(content, tmp_path) == []

    groups = hd.sr.srread(io.BytesIO(content)).content.get_image_measurement_groups()
    assert [g.tracking_identifier for g in groups] == ["nodule", "normal"]
    for group, (label, probability) in zip(groups, probabilities):
        (measurement,) = group.get_measurements(name=codes.DCM.Probability)
        assert (measurement.value, measurement.unit.value) == (pytest.approx(probability), "1")
        (evaluation,) = group.get_qualitative_evaluations(name=codes.DCM.PresenceOfProperty)
        assert evaluation.value == (codes.DCM.Present if label == "nodule" else codes.DCM.Absent)
        assert [image.referenced_sop_instance_uid for image in group.source_images] == [instance.header.SOPInstanceUID]
    assert groups[0].finding_type == codes.SCT.Nodule
    assert classification_report(Answer(card, result, {}, "r1")).SOPInstanceUID == sr.SOPInstanceUID


def test_a_class_without_findings_is_reported_absent(segmented, tmp_path) -> None:
    answer, _ = segmented
    empty = SimpleNamespace(**{**vars(answer.result), "labels_map": np.zeros_like(answer.result.labels_map)})
    sr, _ = segmentation_report(Answer(answer.card, empty, {}, "r1"))
    content = report_bytes(sr)
    assert dciodvfy_errors(content, tmp_path) == []
    report = hd.sr.srread(io.BytesIO(content)).content
    assert report.get_volumetric_roi_measurement_groups() == []
    groups = report.get_image_measurement_groups()
    assert [g.tracking_identifier for g in groups] == ["nodule", "liver"]
    for group in groups:
        (evaluation,) = group.get_qualitative_evaluations(name=codes.DCM.PresenceOfProperty)
        assert evaluation.value == codes.DCM.Absent
