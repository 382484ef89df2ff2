"""The output-format registry: every format declared once, and negotiation, 406/422 and
the API docs derived from the declarations."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from contract import Task
from gateway.errors import NotAcceptable, OutputUnavailable
from gateway.outputs.negotiation import requested_format
from gateway.outputs.openapi import FORMAT_NAMES, binary_answers, predict_description
from gateway.outputs.registry import ENCODERS, MEDIA_TYPES, OutputFormat, effective_format


def _request(query: str = "", accept: str | None = None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "query_string": query.encode(), "headers": headers})


def test_the_enum_media_types_and_docs_list_every_registered_encoder() -> None:
    assert [f.value for f in OutputFormat] == list(ENCODERS) == FORMAT_NAMES
    assert all(ENCODERS[name].name == name for name in ENCODERS)
    assert {f: ENCODERS[f].media_type for f in OutputFormat} == MEDIA_TYPES
    description = predict_description()
    assert all(f"| `{name}` | {encoder.media_type} |" in description for name, encoder in ENCODERS.items())
    assert set(binary_answers()) == {e.media_type for e in ENCODERS.values()} - {"application/json"}


@pytest.mark.parametrize(
    "query, accept, expected",
    [
        ("", None, "json"),
        ("", "  ", "json"),
        ("format=NIFTI", "image/png", "nifti"),  # format= wins over Accept
        ("", "image/png", "png"),
        ("", "application/x-nifti", "nifti"),
        ("", "text/html, application/dicom;q=0.5", "seg"),
        ("", "application/dicom;q=0.5, image/png;q=0.9", "png"),  # highest quality first
        ("", "image/png;q=0, */*", "json"),  # q=0: not acceptable
        ("", "application/*", "json"),
    ],
)
def test_requested_format(query: str, accept: str | None, expected: str) -> None:
    assert requested_format(_request(query, accept)) == expected


@pytest.mark.parametrize("query, accept", [("format=jpeg", None), ("", "text/html"), ("", "image/png;q=0")])
def test_what_no_encoder_answers_is_not_acceptable(query: str, accept: str | None) -> None:
    with pytest.raises(NotAcceptable):
        requested_format(_request(query, accept))


def test_a_classifier_with_an_activation_map_answers_png_as_its_heatmap() -> None:
    assert effective_format(OutputFormat.PNG, Task.CLASSIFICATION, True) == OutputFormat.HEATMAP
    assert effective_format(OutputFormat.HEATMAP, Task.CLASSIFICATION, True) == OutputFormat.HEATMAP
    assert effective_format(OutputFormat.PNG, Task.SEGMENTATION_2D, False) == OutputFormat.PNG


@pytest.mark.parametrize(
    "output_format, task, has_activation_map, allowed",
    [
        (OutputFormat.PNG, Task.CLASSIFICATION, False, "fhir, json, sr"),
        (OutputFormat.HEATMAP, Task.CLASSIFICATION, False, "fhir, json, sr"),
        (OutputFormat.HEATMAP, Task.MULTI_INPUT, True, "fhir, json, sr"),
        (OutputFormat.SEG, Task.CLASSIFICATION, True, "fhir, heatmap, json, sr"),
    ],
)
def test_a_format_that_does_not_apply_is_unavailable(output_format, task, has_activation_map, allowed) -> None:
    with pytest.raises(OutputUnavailable, match=f"not available for this {task} model; use one of {allowed}$"):
        effective_format(output_format, task, has_activation_map)


def test_json_answers_every_task_so_an_unknown_one_reaches_dispatch() -> None:
    assert effective_format(OutputFormat.JSON, "detection", False) == OutputFormat.JSON
