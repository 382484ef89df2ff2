"""``format=sc``: a DICOM Secondary Capture of the mask over the windowed source, for viewers
that show neither SEG nor SR.

One single-frame RGB Secondary Capture Image (highdicom ``SCImage``) of one slice: the one
``slice=`` names, else the one with the largest foreground area (the middle one if there is
none) — the slice and the pixels of ``format=png`` (:func:`~gateway.outputs.png.overlay_slice`),
so a viewer and a browser show the same picture. Its size is bounded by its source: one frame
of the source slice's rows × columns at 3 bytes a pixel (768 KiB for a 512² CT), never more
than 3 × the per-frame pixel limit of the inputs (``preprocessing/limits.py``).

It files into the source's study (Patient and General Study attributes copied as sent) as its
own series, numbered the source's series number + 9200 (a SEG's is + 9000), with Series and SOP
Instance UIDs derived from the result (:mod:`gateway.outputs.uids`), so the same result encoded
twice is the same object. Burned In Annotation is YES; the legend (class colours → labels) and
a not-for-diagnosis notice are in Image Comments and Derivation Description, which viewers show.
"""

from __future__ import annotations

import hashlib
import io

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from preprocessing import SeriesPlan
from preprocessing.attributes import header_text, header_value
from preprocessing.frames import Frame

from ..errors import OutputUnavailable
from .encoder import SEGMENTATION_TASKS, Answer, Binary, output_format
from .overlay import class_colour_name
from .png import overlay_slice
from .uids import derived_uid

#: Added to the source's Series Number for the secondary capture's series.
SERIES_NUMBER_OFFSET = 9200
_MAX_IS = 2**31 - 1  # the largest Integer String value

#: What a secondary capture needs of each source: to file into its study and to reference it.
_REQUIRED = (
    ("StudyInstanceUID", "(0020,000D) Study Instance UID"),
    ("SOPInstanceUID", "(0008,0018) SOP Instance UID"),
    ("SOPClassUID", "(0008,0016) SOP Class UID"),
)

#: Patient and General Study attributes copied from the source as sent (PS3.3 C.7.1.1, C.7.2.1),
#: so the capture files under the same patient and study however a PACS matches them.
_COPIED = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)

#: Direction (LPS) → Patient Orientation letter, for the closest patient axis.
_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))


def check_sources(plan: SeriesPlan) -> None:
    """Whether a secondary capture can be made of ``plan``'s sources: grayscale, with the
    study and instance UIDs it files under and references; :class:`OutputUnavailable` naming
    what is missing otherwise. Run before the model, so such a request costs no inference."""
    instances = {id(frame.instance): frame.instance for frame in plan.frames}.values()
    for number, instance in enumerate(instances, start=1):
        missing = [name for keyword, name in _REQUIRED if not header_text(instance.header, keyword)]
        if missing:
            raise OutputUnavailable(
                f"a DICOM secondary capture cannot be made for this series: instance {number} has no "
                f"{', '.join(missing)}; ask for format=png or json"
            )
        if instance.pixels.samples_per_pixel != 1:
            raise OutputUnavailable("an overlay is drawn on a grayscale image; this source is colour: ask for format=json or nifti")


def notice(model: str, version: str, labels: list[str]) -> str:
    """The text a radiology viewer shows with the capture: what it is, that it is not for
    diagnosis, and the legend of class colours (every foreground class of the model)."""
    legend = "; ".join(f"{class_colour_name(value)} = {label}" for value, label in enumerate(labels) if value > 0)
    return (
        f"AI segmentation by medserve model {model} version {version} burned into the windowed source image. "
        f"NOT FOR DIAGNOSTIC USE: review the original images. Legend: {legend}."
    )


def secondary_capture(
    frame: Frame, pixels: np.ndarray, series_uid: str, sop_uid: str, instance_number: int, text: str, model: str, version: str
) -> bytes:
    """A Secondary Capture Image of ``pixels`` ([rows, cols, 3] uint8 RGB) drawn from the
    source ``frame``: its patient and study, a reference to the source image and frame."""
    header = frame.instance.header
    series_number = header_value(header, "SeriesNumber")
    try:
        series_number = int(series_number) if series_number is not None else 0
    except (TypeError, ValueError):
        series_number = 0
    spacing = header_value(frame.header, "PixelSpacing")
    sc = hd.sc.SCImage(
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        study_instance_uid=header_text(header, "StudyInstanceUID"),
        series_instance_uid=series_uid,
        series_number=min(max(series_number, 0) + SERIES_NUMBER_OFFSET, _MAX_IS),
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        manufacturer="medserve",
        manufacturer_model_name=model[:64],
        software_versions=version[:64] or "1",
        device_serial_number="medserve-gateway",
        series_description=f"medserve {model} overlay, not for diagnosis"[:64],
        patient_orientation=_orientation(frame),
        pixel_spacing=None if spacing is None or len(spacing) != 2 else (float(spacing[0]), float(spacing[1])),
    )
    for keyword in _COPIED:
        element = header.get_item(keyword)
        if element is not None:
            sc[keyword] = element  # as sent: a PACS matches patient and study on these exact values
        elif keyword == "SpecificCharacterSet" and keyword in sc:
            del sc[keyword]  # highdicom's default; the copied text is in the source's repertoire
    if frame.plane is None:
        sc.PatientOrientation = None  # Type 2: unknown, not guessed
    laterality = header_text(header, "Laterality")
    sc.Laterality = laterality if laterality in ("R", "L") else None  # Type 2C: the source's, else empty (unknown)
    sc.BurnedInAnnotation = "YES"
    sc.LossyImageCompression = "00"
    sc.ImageComments = text
    sc.DerivationDescription = text[:1024]
    source = Dataset()
    source.ReferencedSOPClassUID = header_text(header, "SOPClassUID")
    source.ReferencedSOPInstanceUID = header_text(header, "SOPInstanceUID")
    if frame.instance.pixels.number_of_frames > 1:
        source.ReferencedFrameNumber = frame.index + 1
    sc.SourceImageSequence = [source]
    buffer = io.BytesIO()
    sc.save_as(buffer)
    return buffer.getvalue()


def _orientation(frame: Frame) -> tuple[str, str]:
    """Patient Orientation: the patient axis closest to the row and column directions
    (placeholder when the source has no plane; emptied after construction then)."""
    if frame.plane is None:
        return ("L", "P")
    return tuple(_letter(direction) for direction in (frame.plane.row_cosine, frame.plane.column_cosine))  # type: ignore[return-value]


def _letter(direction: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(direction)))
    positive, negative = _LETTERS[axis]
    return positive if direction[axis] > 0 else negative


def result_uids(answer: Answer, index: int) -> tuple[str, str]:
    """The Series and SOP Instance UIDs of the capture of slice ``index``: derived from the
    model, its version, the source instances, the label map and the slice, so the same result
    encoded again gives the same UIDs (and captures of other slices of it share the series)."""
    result = answer.result
    sources = list(dict.fromkeys(header_text(frame.instance.header, "SOPInstanceUID") for frame in result.frames))
    labels_map = np.ascontiguousarray(result.labels_map)
    digest = hashlib.sha256(f"{labels_map.shape}{labels_map.dtype}".encode() + labels_map.tobytes()).hexdigest()
    parts = (answer.card.name, result.model_version, str(len(sources)), *sources, digest)
    return derived_uid("sc-series", *parts), derived_uid("sc", *parts, str(index))


@output_format("sc", "application/dicom", accept=(), tasks=SEGMENTATION_TASKS, check_sources=check_sources)
def encoder(answer: Answer) -> Binary:
    """DICOM Secondary Capture (RGB) of the mask over the windowed slice, for viewers without SEG (`slice=` picks it)"""
    result, name = answer.result, answer.card.name
    index, pixels = overlay_slice(answer)
    series_uid, sop_uid = result_uids(answer, index)
    text = notice(name, result.model_version, result.labels)
    try:
        content = secondary_capture(result.frames[index], pixels, series_uid, sop_uid, index + 1, text, name, result.model_version)
    except (ValueError, TypeError, AttributeError, KeyError, LookupError) as exc:  # highdicom judging the source's values
        raise OutputUnavailable(
            f"the source headers cannot be carried into a DICOM secondary capture ({type(exc).__name__}); ask for format=png"
        ) from exc
    return Binary(content, {"X-Slice-Index": str(index), "Content-Disposition": f'attachment; filename="{name}-sc.dcm"'})
