"""``python -m dimse``: run the DIMSE receiver until SIGTERM or SIGINT (settings from
``MEDSERVE_*``; JSON log lines on stderr), with its ``/metrics`` and ``/healthz`` on
``MEDSERVE_DIMSE_METRICS_PORT`` (:mod:`dimse.metrics`)."""

from __future__ import annotations

import logging
import signal
import threading

from gateway.logs import configure_logging

from .config import DimseSettings
from .metrics import MetricsSettings, serve_metrics
from .server import DimseServer


def main() -> None:
    settings = DimseSettings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = DimseServer(settings).start()
    exposition = MetricsSettings()
    endpoint = None
    if exposition.dimse_metrics_port:
        try:
            endpoint = serve_metrics(server.metrics, exposition.dimse_metrics_host, exposition.dimse_metrics_port, server.healthy)
        except OSError as exc:  # the port taken (a second receiver on a dev host): receive anyway, scrapes see it down
            logging.getLogger("medserve.dimse").error(
                "metrics endpoint not started", extra={"port": exposition.dimse_metrics_port, "error": type(exc).__name__}
            )
    try:
        stop.wait()
    finally:
        if endpoint is not None:
            endpoint.shutdown()
        server.stop()


if __name__ == "__main__":
    main()
