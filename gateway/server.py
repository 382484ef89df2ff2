"""Start the gateway: ``python -m gateway.server``, with host, port and workers from ``MEDSERVE_*``.

One gateway process holds Python's GIL for all of its requests, so it serves at most one CPU's
worth of them (~150 CT slices/s on this project's 2-core machine). ``MEDSERVE_WORKERS`` > 1
runs that many uvicorn worker processes on the same port, for a host or pod with more CPUs.
Their Prometheus metrics are then kept in prometheus-client's multiprocess mode: each worker
writes its counters and histograms to files in one directory, and ``/metrics``, whichever
worker answers it, adds them up. Drift is watched per worker (each sees a share of the
traffic) and published through the same files (:mod:`gateway.drift`).

Each worker listens on a socket of its own, all bound to the port with ``SO_REUSEPORT``
(Linux): the kernel then hands every new connection to one worker by a hash of its
addresses. uvicorn's own supervisor shares one listening socket, and whichever worker is idle
first accepts everything that is waiting: measured here, 16 keep-alive connections opened at
once all went to one of two workers (25 / 7 of 32), so a 2-worker gateway behind a few
long-lived connections (an ingress, a proxy, a load generator) served no more than one
worker (docs/benchmarks.md, "Scaling with gateway workers").

HTTP is uvicorn's httptools protocol with bounded request heads (:mod:`gateway.http_limits`):
a request line and headers beyond ``MEDSERVE_MAX_REQUEST_HEADER_BYTES`` or
``MEDSERVE_MAX_REQUEST_HEADERS`` are answered 431 before they are buffered. It is named by
import path, so that each worker process imports it.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn import Config
    from uvicorn.supervisors.multiprocess import Process

logger = logging.getLogger("uvicorn.error")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_PROTOCOL = "gateway.http_limits:HeaderLimitedHttpToolsProtocol"
APP = "gateway.main:create_app"


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


def reuse_port_sockets(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """``count`` listening TCP sockets on ``host``:``port`` with ``SO_REUSEPORT``, inheritable
    by worker processes. Port 0 binds the first to a free port and the others to the same."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _supervisor(config: "Config", sockets: list[socket.socket]) -> "object":
    """uvicorn's worker supervisor, each worker (and its replacement) on its own socket."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess
    from uvicorn.supervisors.multiprocess import Process

    class OwnSocketWorkers(Multiprocess):
        def _start(self, slot: int) -> Process:
            process = Process(self.config, [sockets[slot]])
            process.start()
            return process

        def init_processes(self) -> None:
            self.processes = [self._start(slot) for slot in range(self.processes_num)]

        def keep_subprocess_alive(self) -> None:
            for slot, process in enumerate(self.processes):
                if self.should_exit.is_set():
                    return
                if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                    continue
                process.kill()  # hung or dead
                process.join()
                if process.exitcode == STARTUP_FAILURE:  # the app cannot start: it would fail again
                    logger.error("Child process [%s] failed to start, stopping the parent process.", process.pid)
                    self.should_exit.set()
                    return
                logger.info("Child process [%s] died", process.pid)
                self.processes[slot] = self._start(slot)

        def restart_all(self) -> None:  # SIGHUP: each worker replaced on its own socket, ready first
            for slot, old in enumerate(self.processes):
                if self.should_exit.is_set():
                    return
                new = self._start(slot)
                if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                    new.kill()
                    new.join()
                    logger.error("New child process [%s] was not ready in time; keeping [%s].", new.pid, old.pid)
                    return
                old.terminate()
                old.join()
                self.processes[slot] = new

        def handle_ttin(self) -> None:
            logger.warning("SIGTTIN ignored: set MEDSERVE_WORKERS and restart to change the number of workers")

        def handle_ttou(self) -> None:
            logger.warning("SIGTTOU ignored: set MEDSERVE_WORKERS and restart to change the number of workers")

    return OwnSocketWorkers(config, sockets=sockets)


def main() -> None:
    import uvicorn

    from .config import get_settings

    settings = get_settings()
    prepare_metrics_directory(settings.workers)
    options = dict(
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http=HTTP_PROTOCOL,
        access_log=False,
        log_level=settings.log_level.lower(),
    )
    if settings.workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP, **options)
        return
    config = uvicorn.Config(APP, **options)  # also configures uvicorn's logging
    sockets = reuse_port_sockets(settings.host, settings.port, settings.workers, config.backlog)
    logger.info("Gateway on %s:%d: %d workers, a socket each", settings.host, sockets[0].getsockname()[1], settings.workers)
    try:
        _supervisor(config, sockets).run()  # type: ignore[attr-defined]
    finally:
        for sock in sockets:
            sock.close()


if __name__ == "__main__":
    main()
