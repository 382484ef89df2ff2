"""The predict route's OpenAPI documentation of its answers, derived from the registry."""

from __future__ import annotations

from typing import Any

from .encoder import OutputEncoder
from .registry import DEFAULT_FORMAT, ENCODERS, OutputFormat

#: The values of the ``format`` query parameter's enum.
FORMAT_NAMES: list[str] = [f.value for f in OutputFormat]


def _tasks(encoder: OutputEncoder) -> str:
    tasks = "every task" if encoder.tasks is None else ", ".join(sorted(encoder.tasks))
    return f"{tasks} with an activation map" if encoder.needs_activation_map else tasks


def _accept(encoder: OutputEncoder) -> str:
    wildcards = ["*/*"] if encoder.name == DEFAULT_FORMAT else []
    chosen_by = [*wildcards, *encoder.accept, *(f"`{name}`" for name in encoder.answers_for)]
    return ", ".join(chosen_by) or "—"


def predict_description() -> str:
    """Markdown for the route: the default and one table row per registered format."""
    rows = [
        f"| `{e.name}` | {e.media_type} | {_accept(e)} | {_tasks(e)} | {e.summary} |" for e in ENCODERS.values()
    ]
    return "\n".join(
        [
            f"Answers `{DEFAULT_FORMAT}` by default; the `format` query parameter, or else the Accept header, "
            "chooses another. A format the model does not answer is 422 `output_unavailable`; an unknown one, "
            "or an Accept header nothing satisfies, 406 `not_acceptable`.",
            "",
            "| format | media type | also chosen by | for | content |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def binary_answers() -> dict[str, dict[str, Any]]:
    """The 200 answer's non-JSON media types (JSON ones are the route's response model)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {e.media_type: binary for e in ENCODERS.values() if e.media_type != "application/json"}
