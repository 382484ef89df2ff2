"""Output formats: chosen by ``?format=`` or, failing that, by the ``Accept`` header.

| format    | media type                | for                                             |
|-----------|---------------------------|-------------------------------------------------|
| ``json``  | application/json          | every task (labels, probabilities, measurements)|
| ``rle``   | application/json          | segmentation: JSON plus each class mask as RLE  |
| ``png``   | image/png                 | segmentation: windowed slice + coloured mask    |
| ``nifti`` | application/gzip          | segmentation: label map (.nii.gz), real affine  |
| ``seg``   | application/dicom         | segmentation: DICOM SEG referencing the sources |
| ``heatmap``| image/png                | classifiers with an activation map: its overlay |
"""

from __future__ import annotations

from enum import StrEnum

from fastapi import Request

from .errors import NotAcceptable, OutputUnavailable


class OutputFormat(StrEnum):
    JSON = "json"
    RLE = "rle"
    PNG = "png"
    NIFTI = "nifti"
    SEG = "seg"
    HEATMAP = "heatmap"


MEDIA_TYPES = {
    OutputFormat.JSON: "application/json",
    OutputFormat.RLE: "application/json",
    OutputFormat.PNG: "image/png",
    OutputFormat.NIFTI: "application/gzip",
    OutputFormat.SEG: "application/dicom",
    OutputFormat.HEATMAP: "image/png",
}
_FROM_ACCEPT = {
    "application/json": OutputFormat.JSON,
    "image/png": OutputFormat.PNG,
    "application/gzip": OutputFormat.NIFTI,
    "application/x-nifti": OutputFormat.NIFTI,
    "application/dicom": OutputFormat.SEG,
}
SEGMENTATION_FORMATS = frozenset(OutputFormat) - {OutputFormat.HEATMAP}
CLASSIFICATION_FORMATS = frozenset({OutputFormat.JSON})
EXPLAINED_CLASSIFICATION_FORMATS = frozenset({OutputFormat.JSON, OutputFormat.HEATMAP})


def requested_format(request: Request) -> OutputFormat:
    explicit = request.query_params.get("format")
    if explicit:
        try:
            return OutputFormat(explicit.lower())
        except ValueError:
            raise NotAcceptable(f"unknown format {explicit!r}; use one of {', '.join(f.value for f in OutputFormat)}") from None
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return OutputFormat.JSON
    ranked = []
    for position, item in enumerate(accept.split(",")):
        media, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, media.strip().lower()))
    for negative_quality, _, media in sorted(ranked):
        if negative_quality == 0:
            continue
        if media in ("*/*", "application/*"):
            return OutputFormat.JSON
        if media in _FROM_ACCEPT:
            return _FROM_ACCEPT[media]
    raise NotAcceptable(f"none of the accepted media types ({accept}) can be produced; see ?format=")


def effective_format(output_format: OutputFormat, task: str, has_activation_map: bool) -> OutputFormat:
    """The format to produce, or :class:`OutputUnavailable`. A classifier asked for PNG
    answers its activation-map overlay when it has one."""
    if task.startswith("segmentation"):
        allowed = SEGMENTATION_FORMATS
    else:
        allowed = EXPLAINED_CLASSIFICATION_FORMATS if has_activation_map else CLASSIFICATION_FORMATS
        if output_format == OutputFormat.PNG and has_activation_map:
            output_format = OutputFormat.HEATMAP
    if output_format not in allowed:
        raise OutputUnavailable(
            f"format {output_format.value!r} is not available for this {task} model; use one of "
            f"{', '.join(sorted(f.value for f in allowed))}"
        )
    return output_format
