"""DICOM Segmentation objects (highdicom) that reference the source instances.

A SEG is what a PACS or viewer stores next to the images: binary segments, one per class,
each frame referencing the source slice it lies on.
"""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

#: Segmented property types for common label names; others are coded as "Morphologically
#: Abnormal Structure" with the label as the segment's free-text name.
_PROPERTY_TYPES = {
    "nodule": codes.SCT.Nodule,
    "lesion": codes.SCT.Lesion,
    "mass": codes.SCT.Mass,
    "neoplasm": codes.SCT.Neoplasm,
    "tumor": codes.SCT.Neoplasm,
    "liver": codes.SCT.Liver,
    "lung": codes.SCT.Lung,
}
_ANATOMY = {"liver", "lung"}


def _description(number: int, label: str, model: str, version: str) -> hd.seg.SegmentDescription:
    property_type = _PROPERTY_TYPES.get(label.lower(), codes.SCT.MorphologicallyAbnormalStructure)
    category = codes.SCT.AnatomicalStructure if label.lower() in _ANATOMY else codes.SCT.MorphologicallyAbnormalStructure
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label[:64],
        segmented_property_category=category,
        segmented_property_type=property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=model[:64], version=version[:64] or "1", family=codes.cid7162.ArtificialIntelligence
        ),
    )


def segmentation(
    source_images: list[Dataset], labels_map: np.ndarray, labels: list[str], model: str, model_version: str
) -> bytes:
    """A binary DICOM SEG of ``labels_map`` ([frames, rows, cols] on the source grid, frames
    in the order of ``source_images``; value k = class ``labels[k]``, 0 = background)."""
    present = [value for value in range(1, len(labels)) if (labels_map == value).any()] or [1]
    descriptions = [_description(number, labels[value], model, model_version) for number, value in enumerate(present, start=1)]
    remapped = np.zeros(labels_map.shape, dtype=np.uint8)
    for number, value in enumerate(present, start=1):
        remapped[labels_map == value] = number
    reference = source_images[0]
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=remapped,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=int(reference.get("SeriesNumber", 0) or 0) + 9000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medserve",
        manufacturer_model_name=model[:64],
        software_versions=model_version[:64] or "1",
        device_serial_number="medserve-gateway",
        series_description=f"medserve {model}"[:64],
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()
