"""What an output format is: one :class:`OutputEncoder` per ``gateway/outputs/<format>.py``,
declared by :func:`output_format` on the function that encodes.

An encoder declares everything the gateway needs to know about its format — the ``format=``
name, the media type it answers, the ``Accept`` media types that select it, the tasks it
applies to, what it needs before the model runs — and ``encode()``, which turns one task's
result into the answer. Format negotiation, 406/422 and the OpenAPI description of the
predict route are derived from the registered encoders (:mod:`gateway.outputs.registry`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from contract import Task

if TYPE_CHECKING:  # results are typed by the task modules; encoders only read them
    from preprocessing import SeriesPlan

    from ..catalog import ModelCard

#: The tasks whose result is a label map on the source grid (a segmentation result).
SEGMENTATION_TASKS = frozenset(task for task in Task if task.is_segmentation)


@dataclass(frozen=True)
class Answer:
    """What an encoder turns into an answer: one request's result and its options.

    ``result`` is the task's result (a classification or a segmentation result, as
    ``card.task`` says); ``timings_ms`` are the stage timings in milliseconds at the time of
    answering; ``slice_index`` is the ``slice=`` option (a slice of a segmented series, or an
    instance of a classified upload), ``None`` when not given.
    """

    card: ModelCard
    result: Any
    timings_ms: Mapping[str, float]
    request_id: str
    slice_index: int | None = None

    @property
    def segmented(self) -> bool:
        return self.card.task in SEGMENTATION_TASKS


@dataclass(frozen=True)
class Binary:
    """A non-JSON answer: its bytes and the headers that describe them (the media type is
    the encoder's)."""

    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def attachment(cls, content: bytes, filename: str) -> Binary:
        """A file to save rather than display: ``Content-Disposition: attachment`` naming it."""
        return cls(content, {"Content-Disposition": f'attachment; filename="{filename}"'})


@dataclass(frozen=True)
class OutputEncoder:
    """One output format.

    ``accept``: the ``Accept`` media types that choose this format (none: only ``format=``
    does). ``tasks``: the task values it applies to (``None``: every task).
    ``needs_activation_map``: it applies only to models exported with an activation-map
    output, and asks the model for it. ``answers_for``: formats this one answers in their
    place when they do not apply to a model but this one does (a classifier asked for ``png``
    answers its heatmap). ``check_sources``: what the format needs of the sources, checked
    before the model runs (:class:`~gateway.errors.OutputUnavailable` otherwise), so a request
    that cannot be answered costs no inference. ``summary``: one line for the API docs.
    """

    name: str
    media_type: str
    summary: str
    encode: Callable[[Answer], BaseModel | Binary]
    accept: tuple[str, ...] = ()
    tasks: frozenset[Task] | None = None
    needs_activation_map: bool = False
    answers_for: tuple[str, ...] = ()
    check_sources: Callable[[SeriesPlan], None] | None = None

    def applies(self, task: Task, has_activation_map: bool) -> bool:
        """Whether this format can answer for a model of ``task``."""
        return (self.tasks is None or task in self.tasks) and (has_activation_map or not self.needs_activation_map)


def output_format(
    name: str,
    media_type: str,
    *,
    accept: tuple[str, ...] | None = None,
    tasks: frozenset[Task] | None = None,
    needs_activation_map: bool = False,
    answers_for: tuple[str, ...] = (),
    check_sources: Callable[[SeriesPlan], None] | None = None,
) -> Callable[[Callable[[Answer], BaseModel | Binary]], OutputEncoder]:
    """Declares the decorated ``encode(answer)`` as the :class:`OutputEncoder` of format
    ``name`` (the decorated name is then the encoder, which ``registry.ENCODERS`` lists).

    The first line of the function's docstring is the format's ``summary`` in the API docs
    (as click takes a command's help from its docstring). ``accept`` defaults to ``(media_type,)``: the ``Accept`` media type that selects a format is
    its own unless it shares it with another (``()``: only ``format=`` selects it). The other
    arguments are :class:`OutputEncoder`'s.
    """

    def declare(encode: Callable[[Answer], BaseModel | Binary]) -> OutputEncoder:
        if not encode.__doc__:
            raise TypeError(f"the encoder of format {name!r} needs a docstring: its first line is the API docs' summary")
        return OutputEncoder(
            name=name,
            media_type=media_type,
            summary=encode.__doc__.strip().splitlines()[0],
            encode=encode,
            accept=(media_type,) if accept is None else accept,
            tasks=tasks,
            needs_activation_map=needs_activation_map,
            answers_for=answers_for,
            check_sources=check_sources,
        )

    return declare
