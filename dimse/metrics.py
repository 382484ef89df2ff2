"""Prometheus metrics of the DIMSE receiver, and the HTTP endpoint that serves them.

Each :class:`ReceiverMetrics` has its own registry (one receiver per process in production;
several in one test process without name clashes). Counters are incremented by
:class:`dimse.server.DimseServer` as things happen; the gauges are computed when Prometheus
scrapes, cheaply:

* ``medserve_dimse_associations_active``: pynetdicom's acceptor threads at that moment;
* ``medserve_dimse_spool_disk_free_bytes`` / ``..._size_bytes``: one ``statvfs`` of the spool's
  filesystem (free: the bytes an unprivileged writer may still use, ``f_bavail``);
* ``medserve_dimse_spool_bytes``: the instance files under the spool, by a walk of the spool
  done at most every ``walk_every_s`` seconds (a walk of 100,000 files costs ~0.1 s) plus the
  bytes stored since that walk; files the gateway removes (unrouted series, retention) show at
  the next walk.

:func:`serve_metrics` serves ``/metrics`` and ``/healthz`` (200 while the receiver is healthy,
503 otherwise: the liveness probe of Kubernetes and docker-compose) on
``MEDSERVE_DIMSE_METRICS_PORT`` (default 9112; 0 disables it). Label values are fixed sets
(outcomes, refusal reasons): never an AE title or a DICOM value.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import MetricsHandler
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MetricsSettings", "ReceiverMetrics", "rejection_reason", "serve_metrics", "spool_bytes"]

#: A-ASSOCIATE-RJ (source, diagnostic) → the ``outcome`` label of a refused association (PS3.8 9.3.4).
_REJECTIONS = {
    (0x01, 0x03): "rejected_calling_ae",
    (0x01, 0x07): "rejected_called_ae",
    (0x02, 0x01): "rejected_user_identity",
    (0x03, 0x01): "rejected_disk_watermark",
    (0x03, 0x02): "rejected_max_associations",
}


class MetricsSettings(BaseSettings):
    """Where the receiver serves its metrics (``MEDSERVE_DIMSE_METRICS_*``)."""

    model_config = SettingsConfigDict(env_prefix="MEDSERVE_", env_file=None, extra="ignore")

    dimse_metrics_port: int = Field(9112, ge=0, le=65535, description="HTTP port of the receiver's /metrics and /healthz (0: not served).")
    dimse_metrics_host: str = Field("0.0.0.0", description="Address the receiver's metrics endpoint binds to.")


def rejection_reason(source: int | None, diagnostic: int | None) -> str:
    """The ``outcome`` label of an A-ASSOCIATE-RJ with this source and diagnostic."""
    return _REJECTIONS.get((source, diagnostic), "rejected_other")


def spool_bytes(spool: Path) -> int:
    """Bytes of the instance files under ``spool`` (partial files in ``.incoming`` left out)."""
    total = 0
    stack = [str(spool)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:  # removed meanwhile (an unrouted series' folder)
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name != ".incoming":
                            stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total


class _ScrapeTimeGauges(Collector):
    def __init__(self, spool: Path, active: Callable[[], int], walk_every_s: float) -> None:
        self.spool, self.active, self.walk_every_s = spool, active, walk_every_s
        self._lock = threading.Lock()
        self._walked_at = float("-inf")
        self._walked_bytes = 0
        self._stored_since_walk = 0

    def stored(self, size: int) -> None:
        with self._lock:
            self._stored_since_walk += size

    def _spool_bytes(self) -> int:
        with self._lock:
            if time.monotonic() - self._walked_at >= self.walk_every_s:
                self._walked_at, self._stored_since_walk = time.monotonic(), 0
                self._walked_bytes = spool_bytes(self.spool)
            return self._walked_bytes + self._stored_since_walk

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("medserve_dimse_associations_active", "DIMSE associations being served now.", value=self.active())
        yield GaugeMetricFamily("medserve_dimse_spool_bytes", "Bytes of received instance files in the spool.", value=self._spool_bytes())
        try:
            stats = os.statvfs(self.spool)
        except OSError:  # the spool's volume is gone: no disk series, and the alert on absence sees it
            return
        yield GaugeMetricFamily(
            "medserve_dimse_spool_disk_free_bytes", "Bytes still writable (unprivileged) on the spool's filesystem.", value=stats.f_bavail * stats.f_frsize
        )
        yield GaugeMetricFamily("medserve_dimse_spool_disk_size_bytes", "Size in bytes of the spool's filesystem.", value=stats.f_blocks * stats.f_frsize)


class ReceiverMetrics:
    """The receiver's metrics in their own registry (:attr:`registry`)."""

    def __init__(self, spool: Path, active: Callable[[], int], walk_every_s: float = 60.0) -> None:
        self.registry = CollectorRegistry()
        self.associations = Counter(
            "medserve_dimse_associations",
            "DIMSE associations requested, by outcome (accepted, or rejected_<reason>).",
            ["outcome"],
            registry=self.registry,
        )
        self.instances_received = Counter(
            "medserve_dimse_instances_received",
            "Instances acknowledged with success: stored, or a duplicate resend of a stored one.",
            ["outcome"],
            registry=self.registry,
        )
        self.instances_refused = Counter(
            "medserve_dimse_instances_refused",
            "Instances answered with a DIMSE failure status, by reason (dimse.spool's outcome names).",
            ["reason"],
            registry=self.registry,
        )
        self.received_bytes = Counter(
            "medserve_dimse_received_bytes", "Bytes of the data sets of instances stored in the spool.", registry=self.registry
        )
        self.series_completed = Counter("medserve_dimse_series_completed", "Series this receiver closed as complete.", registry=self.registry)
        self._gauges = _ScrapeTimeGauges(spool, active, walk_every_s)
        self.registry.register(self._gauges)

    def stored(self, outcome: str, size: int) -> None:
        """An instance acknowledged with success (``outcome``: stored / duplicate) of ``size`` bytes."""
        self.instances_received.labels(outcome).inc()
        if outcome == "stored":
            self.received_bytes.inc(size)
            self._gauges.stored(size)


class _Handler(MetricsHandler):
    healthy: Callable[[], bool] = staticmethod(lambda: True)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0] != "/healthz":
            return super().do_GET()
        ok = self.healthy()
        body = b'{"status":"ok"}' if ok else b'{"status":"unhealthy"}'
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - no access log lines per scrape
        pass


def serve_metrics(metrics: ReceiverMetrics, host: str, port: int, healthy: Callable[[], bool]) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (``metrics``' registry) and ``/healthz`` (``healthy()``) on
    ``host:port`` in a daemon thread; ``shutdown()`` the server returned to stop it."""
    handler = type("ReceiverMetricsHandler", (_Handler,), {"registry": metrics.registry, "healthy": staticmethod(healthy)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="dimse-metrics", daemon=True).start()
    return server
