"""Start the gateway: ``python -m gateway.server``, with host, port and workers from ``MEDSERVE_*``.

One gateway process holds Python's GIL for all of its requests, so it serves at most one CPU's
worth of them (~150 CT slices/s on this project's 2-core machine). ``MEDSERVE_WORKERS`` > 1
runs that many uvicorn worker processes on the same port, for a host or pod with more CPUs.
Their Prometheus metrics are then kept in prometheus-client's multiprocess mode: each worker
writes its counters and histograms to files in one directory, and ``/metrics``, whichever
worker answers it, adds them up. Drift is watched per worker (each sees a share of the
traffic) and published through the same files (:mod:`gateway.drift`).

HTTP is uvicorn's httptools protocol with bounded request heads (:mod:`gateway.http_limits`):
a request line and headers beyond ``MEDSERVE_MAX_REQUEST_HEADER_BYTES`` or
``MEDSERVE_MAX_REQUEST_HEADERS`` are answered 431 before they are buffered. It is named by
import path, so that each worker process imports it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_PROTOCOL = "gateway.http_limits:HeaderLimitedHttpToolsProtocol"


def prepare_metrics_directory(workers: int) -> Path | None:
    """The directory of prometheus-client's multiprocess files, for several workers or when
    ``PROMETHEUS_MULTIPROC_DIR`` is set already (a temporary one otherwise), emptied of the
    files a previous run left behind — they would add old counts to the new ones — and named
    in ``PROMETHEUS_MULTIPROC_DIR`` for the workers to inherit (it must be set before a
    worker imports prometheus-client). None for one worker and no such variable."""
    configured = os.environ.get(MULTIPROCESS_ENV)
    if workers <= 1 and not configured:
        return None
    directory = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="medserve-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(directory)
    return directory


def main() -> None:
    import uvicorn

    from .config import get_settings

    settings = get_settings()
    prepare_metrics_directory(settings.workers)
    uvicorn.run(
        "gateway.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http=HTTP_PROTOCOL,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
