"""``format=seg``: DICOM Segmentation objects (highdicom) that reference the source instances.

A SEG is what a PACS or viewer stores next to the images: binary segments, one per class,
each frame referencing the source slice it lies on.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as pydicom_codes
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import DA, DT, TM

from contract.codes import Code, LabelCodes
from preprocessing import SeriesPlan
from preprocessing.attributes import header_text, header_value
from preprocessing.frames import Frame

from ..errors import OutputUnavailable
from .encoder import SEGMENTATION_TASKS, Answer, Binary, output_format
from .label_codes import card_label_codes, label_codes
from .uids import derived_uid


def _description(number: int, label: str, codes: LabelCodes, model: str, version: str) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label[:64],
        segmented_property_category=coded(codes.category),
        segmented_property_type=coded(codes.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=model[:64], version=version[:64] or "1", family=pydicom_codes.cid7162.ArtificialIntelligence
        ),
    )


def coded(code: Code) -> hd.sr.CodedConcept:
    """A contract code as highdicom's coded concept."""
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


#: What a SEG copies from its sources, or needs to reference them (PS3.3 A.51).
_REQUIRED = (
    ("FrameOfReferenceUID", "(0020,0052) Frame of Reference UID"),
    ("StudyInstanceUID", "(0020,000D) Study Instance UID"),
    ("SeriesInstanceUID", "(0020,000E) Series Instance UID"),
    ("SOPInstanceUID", "(0008,0018) SOP Instance UID"),
    ("SOPClassUID", "(0008,0016) SOP Class UID"),
)


def check_sources(plan: SeriesPlan) -> None:
    """Whether a SEG can reference ``plan``'s sources; :class:`OutputUnavailable` naming what is
    missing otherwise. Run before the model, so a request that cannot be answered as SEG costs
    no inference."""
    instances = {id(frame.instance): frame.instance for frame in plan.frames}.values()
    for label, instance in enumerate(instances):
        missing = [name for keyword, name in _REQUIRED if not header_text(instance.header, keyword)]
        if missing:
            raise OutputUnavailable(
                f"a DICOM SEG cannot be made for this series: instance {label + 1} has no {', '.join(missing)}; "
                "ask for format=json, rle or nifti"
            )
    if len(instances) > 1 and any(instance.pixels.number_of_frames > 1 for instance in instances):
        raise OutputUnavailable("a DICOM SEG references one multi-frame instance or single-frame ones, not several multi-frame ones")


def seg_sources(frames: Sequence[Frame], labels_map: np.ndarray) -> tuple[list[Dataset], np.ndarray]:
    """The source headers a SEG references and ``labels_map`` in their frame order: the
    single-frame instances in slice order, or one multi-frame instance with the slices put
    back in its stored frame order (the order of its per-frame functional groups)."""
    first = frames[0].instance
    if first.pixels.number_of_frames == 1:
        return [conformant(frame.instance.header) for frame in frames], labels_map
    stored = np.zeros((first.pixels.number_of_frames, *labels_map.shape[1:]), dtype=labels_map.dtype)
    stored[[frame.index for frame in frames]] = labels_map
    return [conformant(first.header)], stored


def conformant(header: Dataset) -> Dataset:
    """A shallow copy of a source header that highdicom can copy into the SEG: dates and
    times that do not parse and enumerated values out of their set are emptied (they are
    Type 2 in the SEG), an unknown (0008,0005) Specific Character Set is dropped (text then
    reads as the default repertoire). The source's other values are kept as sent."""
    copy = Dataset({tag: header.get_item(tag) for tag in header.keys()})  # elements as sent, unconverted
    copy.file_meta = header.file_meta
    copy.set_original_encoding(header.original_encoding[0], header.original_encoding[1], header.original_character_set)
    charset = header_value(header, "SpecificCharacterSet")
    if charset is not None:
        names = charset if isinstance(charset, tuple) else (charset,)
        if any(str(name).strip() not in python_encoding for name in names if str(name).strip()):
            del copy.SpecificCharacterSet
    for tag in header.keys():
        parse = _TEMPORAL.get(_vr(header, tag) or "")
        if parse is not None:
            try:
                value = copy[tag].value  # the gateway reads without validation: malformed text stays text
                for item in value if isinstance(value, MultiValue) else [value]:
                    if item not in (None, ""):
                        parse(item)
            except (ValueError, TypeError, OverflowError):
                copy[tag] = DataElement(tag, header.get_item(tag).VR or _vr(header, tag), None)
    if header_text(copy, "PatientSex") not in ("", "M", "F", "O"):
        copy.PatientSex = None
    return copy


#: Temporal VRs and their parsers, which refuse what highdicom would refuse.
_TEMPORAL = {"DA": DA, "TM": TM, "DT": DT}


def _vr(header: Dataset, tag: BaseTag) -> str | None:
    element = header.get_item(tag)
    if element.VR:
        return element.VR
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


@dataclass(frozen=True)
class SegObject:
    """A SEG and which segment number each label value of the label map got (values absent
    from the map have none)."""

    dataset: hd.seg.Segmentation
    segment_numbers: dict[int, int]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.dataset.save_as(buffer)
        return buffer.getvalue()


def seg_object(
    frames: Sequence[Frame],
    labels_map: np.ndarray,
    labels: list[str],
    model: str,
    model_version: str,
    codes: Mapping[str, LabelCodes] | None = None,
) -> SegObject:
    """The binary DICOM SEG of ``labels_map`` ([slices, rows, cols] on the source grid, slices
    in the order of ``frames``; value k = class ``labels[k]``, 0 = background), each segment
    coded by :func:`~gateway.outputs.label_codes.label_codes` (``codes``: the card's).

    Its Series Instance UID is derived from the model, its version and the source SOP
    Instance UIDs (and frame numbers) in slice order, its SOP Instance UID from those and the label map's bytes
    (:func:`~gateway.outputs.uids.derived_uid`): the same result gives the same SEG, which an
    SR made from it can reference."""
    sources = [f"{header_text(frame.header, 'SOPInstanceUID')}/{frame.index}" for frame in frames]
    digest = hashlib.sha256(np.ascontiguousarray(labels_map, dtype=np.uint8).tobytes() + repr(labels_map.shape).encode()).hexdigest()
    series_uid = derived_uid("seg-series", model, model_version, *sources)
    instance_uid = derived_uid("seg", model, model_version, *sources, digest)
    source_images, stored = seg_sources(frames, labels_map)
    try:
        return _encode(source_images, stored, labels, model, model_version, codes or {}, series_uid, instance_uid)
    except (ValueError, TypeError, AttributeError, KeyError, LookupError) as exc:  # highdicom judging the sources
        raise OutputUnavailable(
            f"the source headers cannot be carried into a DICOM SEG ({type(exc).__name__}); ask for format=nifti or rle"
        ) from exc


def segmentation(
    frames: Sequence[Frame],
    labels_map: np.ndarray,
    labels: list[str],
    model: str,
    model_version: str,
    codes: Mapping[str, LabelCodes] | None = None,
) -> bytes:
    """The bytes of :func:`seg_object`."""
    return seg_object(frames, labels_map, labels, model, model_version, codes).to_bytes()


def _encode(
    source_images: list[Dataset],
    labels_map: np.ndarray,
    labels: list[str],
    model: str,
    model_version: str,
    codes: Mapping[str, LabelCodes],
    series_uid: str,
    instance_uid: str,
) -> SegObject:
    present = [value for value in range(1, len(labels)) if (labels_map == value).any()] or [1]
    descriptions = [
        _description(number, labels[value], label_codes(labels[value], codes), model, model_version)
        for number, value in enumerate(present, start=1)
    ]
    remapped = np.zeros(labels_map.shape, dtype=np.uint8)
    for number, value in enumerate(present, start=1):
        remapped[labels_map == value] = number
    reference = source_images[0]
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=remapped,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_uid,
        series_number=int(reference.get("SeriesNumber", 0) or 0) + 9000,
        sop_instance_uid=instance_uid,
        instance_number=1,
        manufacturer="medserve",
        manufacturer_model_name=model[:64],
        software_versions=model_version[:64] or "1",
        device_serial_number="medserve-gateway",
        series_description=f"medserve {model}"[:64],
    )
    numbers = {value: number for number, value in enumerate(present, start=1) if (labels_map == value).any()}
    return SegObject(seg, numbers)


@output_format("seg", "application/dicom", tasks=SEGMENTATION_TASKS, check_sources=check_sources)
def encoder(answer: Answer) -> Binary:
    """DICOM SEG (highdicom) referencing the source instances"""
    result, name = answer.result, answer.card.name
    content = segmentation(result.frames, result.labels_map, result.labels, name, result.model_version, card_label_codes(answer.card))
    return Binary.attachment(content, f"{name}-seg.dcm")
