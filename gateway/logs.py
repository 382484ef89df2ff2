"""JSON logs, one object per line, with the request id and never patient data.

Only fields we put in ``extra`` deliberately (ids, codes, timings, model names) are emitted;
DICOM attribute values are never logged, so names, IDs and birth dates cannot leak.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k != "request_id"})
        if record.exc_info:
            entry["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Route the root, uvicorn and medserve loggers through one JSON handler on stderr
    (added once; handlers others installed on the root logger are left alone)."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn's access lines quote the request target, query string included (where a client
    # may put an API key); the gateway writes its own request line with the route template.
    # uvicorn logs access whenever this logger has handlers, its own or inherited.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
