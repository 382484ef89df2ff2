"""Which output format a request asks for: ``?format=``, or failing that the ``Accept``
header (RFC 9110 quality values; ties go to the earlier media type)."""

from __future__ import annotations

from fastapi import Request

from ..errors import NotAcceptable
from .registry import DEFAULT_FORMAT, ENCODERS, OutputFormat

#: ``Accept`` media types → the format each selects, as the encoders declare them; ``*/*``
#: and the default format's ``type/*`` select the default.
FROM_ACCEPT: dict[str, OutputFormat] = {
    "*/*": DEFAULT_FORMAT,
    ENCODERS[DEFAULT_FORMAT].media_type.split("/")[0] + "/*": DEFAULT_FORMAT,
    **{media: OutputFormat(name) for name, encoder in ENCODERS.items() for media in encoder.accept},
}


def requested_format(request: Request) -> OutputFormat:
    """The format asked for, or :class:`NotAcceptable` (406) for an unknown ``format`` or an
    ``Accept`` header none of whose media types an encoder answers."""
    explicit = request.query_params.get("format")
    if explicit:
        try:
            return OutputFormat(explicit.lower())
        except ValueError:
            raise NotAcceptable(f"unknown format {explicit!r}; use one of {', '.join(f.value for f in OutputFormat)}") from None
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return DEFAULT_FORMAT
    for media in _by_preference(accept):
        if media in FROM_ACCEPT:
            return FROM_ACCEPT[media]
    raise NotAcceptable(f"none of the accepted media types ({accept}) can be produced; see ?format=")


def _by_preference(accept: str) -> list[str]:
    """The media types of an ``Accept`` header, lower-cased, highest quality first (ties in
    the order given), without those of quality 0 (or an unreadable quality)."""
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
    return [media for negative_quality, _, media in sorted(ranked) if negative_quality != 0]
