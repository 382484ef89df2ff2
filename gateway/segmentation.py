"""Deprecated location of :class:`SegmentationResult`, kept only while gateway/responses.py
imports it from here; delete this file once it imports from :mod:`gateway.tasks`."""

from .tasks.segmentation import SegmentationResult

__all__ = ["SegmentationResult"]
