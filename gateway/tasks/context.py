"""What every task receives (one :class:`InferenceContext`) and what it gives back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from contract import ModelCard
from preprocessing import SeriesPlan

from ..audit import AuditRecord
from ..config import Settings
from ..drift import DriftObservation
from ..stages import StageClock
from ..triton import TritonClient
from ..uploads import DicomPart


@dataclass(frozen=True)
class InferenceContext:
    """One request's inference: the instances sent, the model, where it runs, and what the
    requested output needs before the model runs.

    ``check_sources`` sees a planned series before inference, so that what the output needs
    of the sources (DICOM SEG: its references) is refused before Triton is called;
    ``with_activation_map`` asks a classifier for its activation map as well.
    """

    parts: Sequence[DicomPart]
    card: ModelCard
    triton: TritonClient
    clock: StageClock
    audit: AuditRecord
    request_id: str
    settings: Settings
    check_sources: Callable[[SeriesPlan], None] | None = None
    with_activation_map: bool = False


class TaskResult(Protocol):
    """What every task answers: the model version that ran and one drift observation per
    prediction (per instance, set of paired instances, or series)."""

    @property
    def model_version(self) -> str: ...

    @property
    def drift(self) -> list[DriftObservation]: ...
