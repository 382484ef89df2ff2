"""onnxruntime's own warnings kept off the terminal during an export.

An export used to print dozens of lines from onnxruntime that ask nothing of the user: the
C++ logger's graph-optimizer notices when sessions open (the calibrator opens its own), and
the quantizer's ``logging.warning`` calls on the *root* logger ("Axis 1 is out-of-range for
weight ..." once per InstanceNormalization constant and pass). Export reports in its own words
what matters (steps, warnings in the report); onnxruntime's errors still show.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["quiet_onnxruntime", "silence_onnxruntime_logging"]

#: onnxruntime's C++ severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal.
ERROR_SEVERITY = 3


def quiet_onnxruntime() -> None:
    """Sessions created from now on (by export or by onnxruntime's quantizer) log errors only;
    the ``onnxruntime`` Python loggers too."""
    import onnxruntime as ort

    ort.set_default_logger_severity(ERROR_SEVERITY)
    for name in ("onnxruntime", "onnxruntime.quantization"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _BelowErrorFromOnnxruntime(logging.Filter):
    """Drops records under ERROR whose source file lies in the onnxruntime package."""

    def __init__(self) -> None:
        super().__init__()
        import onnxruntime

        self.package = str(Path(onnxruntime.__file__).resolve().parent)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not str(Path(record.pathname).resolve()).startswith(self.package)


@contextmanager
def silence_onnxruntime_logging() -> Iterator[None]:
    """While inside: :func:`quiet_onnxruntime`, and onnxruntime's warnings on the root logger
    dropped. A root logger without handlers gets a :class:`logging.NullHandler` meanwhile, so
    that ``logging.warning`` does not install a stderr handler for the rest of the process."""
    quiet_onnxruntime()
    root = logging.getLogger()
    noise = _BelowErrorFromOnnxruntime()
    placeholder = logging.NullHandler() if not root.handlers else None
    root.addFilter(noise)
    if placeholder is not None:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeFilter(noise)
        if placeholder is not None:
            root.removeHandler(placeholder)
