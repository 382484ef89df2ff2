"""Tasks as a registry: one module per task, each a runner from one :class:`InferenceContext`
to a result, registered under the task value of the model card.

| task              | module                        | result                 |
|-------------------|-------------------------------|------------------------|
| classification    | :mod:`.classification`        | ClassificationResult   |
| multi-input       | :mod:`.multi_input`           | ClassificationResult   |
| segmentation-2d   | :mod:`.segmentation`          | SegmentationResult     |
| segmentation-3d   | :mod:`.segmentation`          | SegmentationResult     |
| (a cascade card)  | :mod:`.cascade`, by segmentation-3d | SegmentationResult |

A new task is one new module whose runner is decorated with :func:`register`, plus its import
below. A segmentation-3d card with a ``cascade`` runs :mod:`.cascade`'s stages instead of one
model (imported here at start, not on a first request).
"""

from . import cascade, classification, multi_input, segmentation  # noqa: F401  (each registers its runners)
from .classification import ClassificationResult, InstanceClassification, activation_output
from .context import InferenceContext, TaskResult
from .registry import TaskRunner, register, registered_tasks, runner_for
from .segmentation import SegmentationResult

__all__ = [
    "ClassificationResult",
    "InferenceContext",
    "InstanceClassification",
    "SegmentationResult",
    "TaskResult",
    "TaskRunner",
    "activation_output",
    "register",
    "registered_tasks",
    "runner_for",
]
