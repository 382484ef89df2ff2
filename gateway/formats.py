"""Output formats: chosen by ``?format=`` or, failing that, by the ``Accept`` header.

The formats are the encoders registered in :mod:`gateway.outputs.registry`; this module
keeps the names the route and dispatch import until they import from there.
"""

from __future__ import annotations

from .outputs.negotiation import requested_format
from .outputs.registry import MEDIA_TYPES, OutputFormat, effective_format

__all__ = ["MEDIA_TYPES", "OutputFormat", "effective_format", "requested_format"]
