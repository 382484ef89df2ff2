"""``python -m dimse``: run the DIMSE receiver until SIGTERM or SIGINT (settings from
``MEDSERVE_*``; JSON log lines on stderr)."""

from __future__ import annotations

import signal
import threading

from gateway.logs import configure_logging

from .config import DimseSettings
from .server import DimseServer


def main() -> None:
    settings = DimseSettings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = DimseServer(settings).start()
    try:
        stop.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
