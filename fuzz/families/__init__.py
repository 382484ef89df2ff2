"""The mutation families. Each is a named function ``(rng, corpus) -> Request``; the name is
the first part of a case id. Grouped by what they attack:

    binary.py     bytes of a Part 10 stream: flips, cuts, extensions, lying lengths, splices
    elements.py   element values of parsed data sets: image geometry, physical values,
                  photometric interpretation, character set and dates, identifiers,
                  transfer syntax, VR/length agreement, sequence depth
    pixels.py     encapsulated fragments (JPEG, JPEG 2000, JPEG-LS, RLE), native pixel data
                  size, enhanced multi-frame functional groups, series made of many instances
    uploads.py    multipart boundaries and parts, ZIP bombs and corrupt archives
    http.py       header count/size, odd Content-Type/Accept, query strings, every route,
                  the page's static files and the model read routes with hostile paths
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..cases import Request
    from ..corpus import Corpus

Family = Callable[[random.Random, "Corpus"], "Request"]
FAMILIES: dict[str, Family] = {}


def family(function: Family) -> Family:
    """Register ``function`` under its name."""
    FAMILIES[function.__name__] = function
    return function


from . import binary, elements, http, pixels, uploads  # noqa: E402,F401  (they register)
