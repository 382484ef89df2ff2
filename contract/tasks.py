"""What a model does with its input, as the contract names it.

Values are the strings written into (and read from) Triton's ``parameters``; a
:class:`~enum.StrEnum` so that a task still compares equal to its string.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Task"]


class Task(StrEnum):
    CLASSIFICATION = "classification"
    """One answer (labels with probabilities) per instance."""
    SEGMENTATION_2D = "segmentation-2d"
    """A mask per slice, answered as one volume on the series' grid."""
    SEGMENTATION_3D = "segmentation-3d"
    """A mask of a volume, by sliding-window inference over patches of the network's input."""
    MULTI_INPUT = "multi-input"
    """Several inputs (e.g. CT + PET), each with its own modality and preprocessing."""

    @property
    def is_segmentation(self) -> bool:
        return self in (Task.SEGMENTATION_2D, Task.SEGMENTATION_3D)
