"""``format=sr``: a DICOM Comprehensive 3D SR holding a TID 1500 Measurement Report (highdicom),
the numbers of a result as a reporting system and a PACS read them.

- **Observation context**: the observer is a device (TID 1004): name ``medserve``, manufacturer
  ``medserve``, the model's name as manufacturer model name, a UID derived from the model name.
- **Procedure reported**: *Imaging procedure* (SCT 363679005). **Image library**: the source images.
- **Segmentation**: one TID 1411 volumetric group per finding (:mod:`gateway.outputs.findings`),
  tracking identifier ``"<label> <component>"`` and a tracking UID derived from the model,
  its version, the source instances, the label value and the component number; the
  referenced segment of the SEG made from the same result (:func:`gateway.outputs.seg.seg_object`:
  same UIDs, so SR and SEG reference each other wherever they are stored) with its source
  images; finding category / type / site from the label codes (:mod:`gateway.outputs.label_codes`);
  measurements *Volume* (SCT 118565006, mL), *Long axis* (SCT 103339001, mm), *Short axis*
  (SCT 103340004, mm) and, for CT (HU) and MR (no units), the mean and maximum modality value
  under the finding as TID 1419 does it: the modality's concept (*Attenuation Coefficient*,
  DCM 112031; *MR signal intensity*, DCM 110852) with derivation *Mean* (SCT 373098007) /
  *Maximum* (SCT 56851009); other modalities carry no intensity measurement. Every measurement
  names the algorithm (model name and version). A foreground class without any finding is one
  TID 1501 group: tracking identifier ``"<label>"``, its codes, *Presence of property*
  (DCM 121052) *Absent* — the report says what the model looked for and did not find.
- **Classification**: per classified instance and class a TID 1501 group: tracking identifier
  ``"<label>"`` (``"<label> <instance>"`` when several instances were classified), finding type
  the label's code, the class *Probability* (DCM 122157, unit ``1``) and a qualitative evaluation
  *Presence of property* (DCM 121052): *Present* for the predicted (highest) class, *Absent*
  for the others; the classified instance as the group's source image. Multi-input models are
  not offered ``sr``: their result does not carry the source instances an SR must reference.

The SR's Series and SOP Instance UIDs are derived from the model, its version, the sources and
the result (:func:`gateway.outputs.uids.derived_uid`): the same result gives the same SR.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from contract import Task
from preprocessing.attributes import header_text
from preprocessing.frames import Frame

from ..errors import OutputUnavailable
from .encoder import SEGMENTATION_TASKS, Answer, Binary, output_format
from .findings import Finding, find
from .label_codes import card_label_codes, label_codes
from .seg import check_sources as seg_check_sources
from .seg import coded, conformant, seg_object
from .uids import derived_uid

__all__ = ["classification_report", "encoder", "report_bytes", "segmentation_report"]

MILLILITRE = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
MILLIMETRE = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")
PROBABILITY = codes.DCM.Probability

#: The TID 1419 concept of a modality's values, by modality; others get no intensity measurement.
_INTENSITY_CONCEPTS = {"CT": codes.DCM.AttenuationCoefficient, "MR": codes.DCM.MRSignalIntensity}
_UNCARRIED = (ValueError, TypeError, AttributeError, KeyError, LookupError)


def _observation_context(model: str) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derived_uid("device", "medserve", model), name="medserve", manufacturer_name="medserve", model_name=model[:64]
    )
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device))


def _algorithm(model: str, version: str) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=model[:64], version=version[:64] or "1")


def _finding_measurements(finding: Finding, modality: str, algorithm: hd.sr.AlgorithmIdentification) -> list[hd.sr.Measurement]:
    measurements = [
        hd.sr.Measurement(codes.SCT.Volume, finding.volume_ml, MILLILITRE, algorithm_id=algorithm),
        hd.sr.Measurement(codes.SCT.LongAxis, finding.long_axis_mm, MILLIMETRE, algorithm_id=algorithm),
        hd.sr.Measurement(codes.SCT.ShortAxis, finding.short_axis_mm, MILLIMETRE, algorithm_id=algorithm),
    ]
    concept = _INTENSITY_CONCEPTS.get(modality)
    if concept is not None and finding.mean is not None and finding.maximum is not None:
        unit = hd.sr.CodedConcept(finding.unit.code, "UCUM", finding.unit.meaning)
        for derivation, value in ((codes.SCT.Mean, finding.mean), (codes.SCT.Maximum, finding.maximum)):
            measurements.append(hd.sr.Measurement(concept, value, unit, derivation=derivation, algorithm_id=algorithm))
    return measurements


def _referenced_segment(seg: hd.seg.Segmentation, number: int, frames: Sequence[Frame]) -> hd.sr.ReferencedSegment:
    """Segment ``number`` of ``seg`` with the source images the finding spans (``frames``; a
    multi-frame source as one reference naming its frames). Built here rather than by
    ``ReferencedSegment.from_segmentation``, which needs per-frame segment identification that
    a one-segment SEG keeps in its shared functional groups."""
    by_instance: dict[str, tuple[str, list[int]]] = {}
    for frame in frames:
        uid = header_text(frame.header, "SOPInstanceUID")
        by_instance.setdefault(uid, (header_text(frame.instance.header, "SOPClassUID"), []))[1].append(frame.index + 1)
    multi_frame = frames[0].instance.pixels.number_of_frames > 1
    images = [
        hd.sr.SourceImageForSegmentation(sop_class, uid, sorted(numbers) if multi_frame else None)
        for uid, (sop_class, numbers) in by_instance.items()
    ]
    return hd.sr.ReferencedSegment(seg.SOPClassUID, seg.SOPInstanceUID, number, source_images=images)


def segmentation_report(answer: Answer) -> tuple[hd.sr.Comprehensive3DSR, hd.seg.Segmentation]:
    """The SR of a segmentation result, and the SEG it references (the one ``format=seg`` gives)."""
    model, result = answer.card.name, answer.result
    version = result.model_version
    card_codes = card_label_codes(answer.card)
    seg = seg_object(result.frames, result.labels_map, result.labels, model, version, card_codes)
    sources = [conformant(header) for header in _unique_headers(frame.instance.header for frame in result.frames)]
    library = [_library_entry(frame) for frame in _first_frames(result.frames)]
    source_uids = [f"{header_text(frame.header, 'SOPInstanceUID')}/{frame.index}" for frame in result.frames]
    modality = header_text(result.frames[0].header, "Modality").upper()
    algorithm = _algorithm(model, version)
    groups = []
    for finding in find(result.labels_map, result.affine_lps, result.labels, result.frames):
        item_codes = label_codes(finding.label, card_codes)
        tracking = hd.sr.TrackingIdentifier(
            uid=derived_uid("finding", model, version, *source_uids, str(finding.label_value), str(finding.component)),
            identifier=f"{finding.label} {finding.component}"[:64],
        )
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                referenced_segment=_referenced_segment(seg.dataset, seg.segment_numbers[finding.label_value], [result.frames[d] for d in finding.frames]),
                finding_category=coded(item_codes.category),
                finding_type=coded(item_codes.type),
                finding_sites=[hd.sr.FindingSite(coded(item_codes.site))] if item_codes.site is not None else None,
                algorithm_id=algorithm,
                measurements=_finding_measurements(finding, modality, algorithm),
            )
        )
    found = {int(value) for value in np.unique(result.labels_map) if value}
    for value in range(1, len(result.labels)):
        if value not in found:  # the model ran and found none: said so, per class
            item_codes = label_codes(result.labels[value], card_codes)
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=derived_uid("absent", model, version, *source_uids, str(value)), identifier=result.labels[value][:64]
                    ),
                    finding_category=coded(item_codes.category),
                    finding_type=coded(item_codes.type),
                    algorithm_id=algorithm,
                    qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.DCM.PresenceOfProperty, codes.DCM.Absent)],
                )
            )
    digest = hashlib.sha256(seg.dataset.SOPInstanceUID.encode()).hexdigest()  # the SEG's UID digests the label map
    sr = _document(sources + [seg.dataset], groups, library, model, version, source_uids, digest)
    return sr, seg.dataset


def classification_report(answer: Answer) -> hd.sr.Comprehensive3DSR:
    """The SR of a classification result: one group per classified instance and class."""
    model, result = answer.card.name, answer.result
    version = result.model_version
    card_codes = card_label_codes(answer.card)
    algorithm = _algorithm(model, version)
    instances = [instance for instance in result.instances if instance.source is not None]
    if not instances:
        raise OutputUnavailable("a DICOM SR references the classified instances; none was sent as DICOM: ask for format=json")
    sources = [conformant(instance.source.header) for instance in instances]
    source_uids = [instance.sop_instance_uid for instance in instances]
    groups = []
    for number, (instance, header) in enumerate(zip(instances, sources), start=1):
        predicted = instance.probabilities[0][0]
        for label, probability in instance.probabilities:
            item_codes = label_codes(label, card_codes)
            name = label if len(instances) == 1 else f"{label} {number}"
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=derived_uid("classification", model, version, instance.sop_instance_uid, label), identifier=name[:64]
                    ),
                    finding_category=coded(item_codes.category),
                    finding_type=coded(item_codes.type),
                    finding_sites=[hd.sr.FindingSite(coded(item_codes.site))] if item_codes.site is not None else None,
                    algorithm_id=algorithm,
                    measurements=[hd.sr.Measurement(PROBABILITY, probability, NO_UNITS, algorithm_id=algorithm)],
                    qualitative_evaluations=[
                        hd.sr.QualitativeEvaluation(codes.DCM.PresenceOfProperty, codes.DCM.Present if label == predicted else codes.DCM.Absent)
                    ],
                    source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(header)],
                )
            )
    digest = hashlib.sha256(repr([(i.sop_instance_uid, i.probabilities) for i in instances]).encode()).hexdigest()
    return _document(sources, groups, sources, model, version, source_uids, digest)


def _document(
    evidence: Sequence[Dataset], groups: list, library: Sequence[Dataset], model: str, version: str, source_uids: Sequence[str], digest: str
) -> hd.sr.Comprehensive3DSR:
    try:
        report = hd.sr.MeasurementReport(
            observation_context=_observation_context(model),
            procedure_reported=codes.SCT.ImagingProcedure,
            imaging_measurements=groups or None,
            referenced_images=list(library),
        )
        reference = library[0]
        return hd.sr.Comprehensive3DSR(
            evidence=list(evidence),
            content=report[0],
            series_instance_uid=derived_uid("sr-series", model, version, *source_uids),
            series_number=int(reference.get("SeriesNumber", 0) or 0) + 9100,
            sop_instance_uid=derived_uid("sr", model, version, *source_uids, digest),
            instance_number=1,
            manufacturer="medserve",
            is_complete=True,
            series_description=f"medserve {model} measurements"[:64],
        )
    except _UNCARRIED as exc:  # highdicom judging the sources
        raise OutputUnavailable(
            f"the source headers cannot be carried into a DICOM SR ({type(exc).__name__}); ask for format=json"
        ) from exc


#: What an image library entry describes (TID 1602) and a multi-frame source keeps in its
#: functional groups: taken from the first frame's flattened header.
_PLANE_KEYWORDS = ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness")


def _first_frames(frames: Sequence[Frame]) -> list[Frame]:
    first: dict[int, Frame] = {}
    for frame in frames:
        first.setdefault(id(frame.instance), frame)
    return list(first.values())


def _library_entry(frame: Frame) -> Dataset:
    """The source instance of ``frame`` as the image library describes it: its header, with the
    plane attributes of an enhanced multi-frame instance lifted from its first frame."""
    entry = conformant(frame.instance.header)
    for keyword in _PLANE_KEYWORDS:
        if keyword not in entry and keyword in frame.header:
            setattr(entry, keyword, frame.header[keyword].value)
    return entry


def _unique_headers(headers) -> list[Dataset]:
    seen, unique = set(), []
    for header in headers:
        if id(header) not in seen:
            seen.add(id(header))
            unique.append(header)
    return unique


def report_bytes(sr: hd.sr.Comprehensive3DSR) -> bytes:
    buffer = io.BytesIO()
    sr.save_as(buffer)
    return buffer.getvalue()


@output_format(
    "sr",
    "application/dicom",
    accept=(),  # SEG's media type: only format= selects it
    tasks=SEGMENTATION_TASKS | {Task.CLASSIFICATION, Task.MULTI_INPUT},
    check_sources=seg_check_sources,  # what the SEG it references needs of the sources
)
def encoder(answer: Answer) -> Binary:
    """DICOM SR (TID 1500 measurement report, highdicom): findings with volume, axes and intensities, or class probabilities"""
    if answer.card.task in SEGMENTATION_TASKS:
        sr, _ = segmentation_report(answer)
    else:
        sr = classification_report(answer)
    return Binary.attachment(report_bytes(sr), f"{answer.card.name}-sr.dcm")
