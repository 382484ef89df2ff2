"""Deprecated location of :class:`ClassificationResult`, kept only while gateway/responses.py
imports it from here; delete this file once it imports from :mod:`gateway.tasks`."""

from .tasks.classification import ClassificationResult

__all__ = ["ClassificationResult"]
