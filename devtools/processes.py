"""Server processes of the development stack, started and stopped one way.

:class:`ServerProcess` is a command run in a session (process group) of its own — so that
stopping it reaches the workers it forks — with stdout and stderr in a log file; it waits for
an URL to answer, failing at once when the process exits meanwhile, with the log's tail in the
error; and it stops the whole group: SIGTERM (in-flight requests finish), SIGKILL after a
timeout, then SIGKILL whatever of the group outlived its leader (:func:`stop_group`).

:class:`GatewayProcess` is the gateway as production starts it (``python -m gateway.server``,
settings in ``MEDSERVE_*``) from a checkout, on a free loopback port. ``make run``'s supervisor
(:mod:`devtools.run`), the test fixtures, the fuzzing stack and the benchmarks all use these;
:class:`devtools.tritonserver.TritonServer` runs tritonserver through a :class:`ServerProcess`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

#: The checkout this module belongs to: the gateway it starts unless told another.
CHECKOUT = Path(__file__).resolve().parents[1]
#: How often readiness is probed and how long one probe may take (seconds).
POLL_S = 0.25
PROBE_TIMEOUT_S = 2.0


class ServerStartFailed(RuntimeError):
    """A server exited before it was ready, or was not ready in time; the message holds the
    tail of its log."""


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different loopback TCP ports nothing listens on now: all bound at once, so the
    kernel cannot hand out one port twice (closing one before asking for the next could)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 within :data:`PROBE_TIMEOUT_S`."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def describe_exit(returncode: int) -> str:
    """``exited with code 134`` or ``killed by signal SIGKILL (9)`` (Popen's negative codes)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "signal"
        return f"killed by signal {name} ({-returncode})"
    return f"exited with code {returncode}"


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid`` (a process started in a new session);
    nothing when the group is gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(process: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """Stop a server started in a session of its own: SIGTERM its process group (graceful:
    in-flight requests finish), SIGKILL after ``timeout_s``; then SIGKILL whatever of the
    group outlived it (workers of a server that died)."""
    if process.poll() is None:
        signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    signal_group(process.pid, signal.SIGKILL)


class ServerProcess:
    """``command`` in a session of its own, stdout and stderr appended to ``log`` (None: this
    process's own stdout and stderr), stdin closed.

    :meth:`start` returns at once; :meth:`wait_ready` waits for an URL; :meth:`stop` stops the
    process group and may be called any number of times; :meth:`restart` is stop, then start
    (the same command, environment and log). ``pid`` and ``returncode`` stay those of the
    last run after it stopped.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.log = log
        self.stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen | None = None
        self._stopped = False

    @property
    def process(self) -> subprocess.Popen | None:
        """The last run (None before :meth:`start`), for callers that read ``/proc`` of it."""
        return self._process

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process exited (negative: the signal that ended it); None
        while it runs or before it was started."""
        return self._process.poll() if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> "ServerProcess":
        """Start the process and return at once (see :meth:`wait_ready`)."""
        if self.alive:
            raise RuntimeError(f"{self.name} is running already (pid {self.pid})")
        if self.log is None:
            self._process = self._popen(None)
        else:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "ab") as log:  # the child holds its own descriptor
                self._process = self._popen(log)
        self._stopped = False
        return self

    def _popen(self, log: object) -> subprocess.Popen:
        output = subprocess.STDOUT if log is not None else None
        return subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=output, start_new_session=True
        )

    def wait_ready(self, url: str, timeout_s: float = 60.0, cancel: threading.Event | None = None) -> bool:
        """Wait until ``url`` answers 200: True. False when ``cancel`` is set first (Ctrl-C of
        a supervisor). When the process exits first, or ``timeout_s`` passes, the process is
        stopped and :class:`ServerStartFailed` raised with the tail of its log."""
        cancel = cancel or threading.Event()
        deadline = time.monotonic() + timeout_s
        while not cancel.is_set():
            returncode = self.returncode
            if returncode is not None:
                self.stop()
                raise self._failed(f"{self.name} {describe_exit(returncode)} before it was ready")
            if http_ok(url):
                return True
            if time.monotonic() > deadline:
                self.stop()
                raise self._failed(f"{self.name} not ready after {timeout_s:g} s ({url})")
            cancel.wait(POLL_S)
        return False

    def _failed(self, message: str) -> ServerStartFailed:
        return ServerStartFailed(f"{message}:\n{self.log_tail()}" if self.log is not None else message)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log ("" when its output is this process's)."""
        if self.log is None:
            return ""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the process group (:func:`stop_group`; ``timeout_s`` between SIGTERM and
        SIGKILL, ``stop_timeout_s`` by default). Also reaps a process that died by itself."""
        if self._process is None or self._stopped:
            return
        self._stopped = True  # a second stop must not signal a group whose id was reused
        stop_group(self._process, self.stop_timeout_s if timeout_s is None else timeout_s)

    def restart(self) -> "ServerProcess":
        """Stop (or reap) the process and start it again."""
        self.stop()
        return self.start()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GatewayProcess(ServerProcess):
    """The gateway as production starts it, ``python -m gateway.server``, from the checkout
    ``source`` (its working directory and first on ``PYTHONPATH``, so another tree's gateway
    can be started beside this one), talking to Triton at ``triton_grpc_url``.

    ``settings`` are gateway settings by field name (``workers="2"`` is ``MEDSERVE_WORKERS=2``),
    over ``env`` (this process's environment by default). ``port`` None takes a free one.
    With ``work_dir`` the log goes to ``work_dir/gateway-<port>.log`` (None: this process's
    output) and, with more than one worker, the workers' metric files to
    ``work_dir/metrics-<port>`` (:attr:`metrics_dir`). ``PROMETHEUS_MULTIPROC_DIR`` is never
    inherited: the directory is the caller's, and a starting gateway deletes the files in it.
    """

    def __init__(
        self,
        triton_grpc_url: str,
        work_dir: Path | None = None,
        *,
        source: Path = CHECKOUT,
        host: str = "127.0.0.1",
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.source = Path(source).resolve()
        self.metrics_dir = work_dir / f"metrics-{self.port}" if work_dir is not None else None
        environment = {k: v for k, v in (os.environ if env is None else env).items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        environment.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(self.source), environment.get("PYTHONPATH", "")])),
            MEDSERVE_TRITON_GRPC_URL=triton_grpc_url,
            MEDSERVE_HOST=host,
            MEDSERVE_PORT=str(self.port),
        )
        environment.update({f"MEDSERVE_{key.upper()}": str(value) for key, value in (settings or {}).items()})
        if work_dir is not None:  # the node's durable state (jobs, their inputs) beside its log, not in the checkout
            environment.setdefault("MEDSERVE_WORK_DIR", str(work_dir / f"work-{self.port}"))
        if self.metrics_dir is not None and int(environment.get("MEDSERVE_WORKERS", "1")) > 1:
            environment["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        log = work_dir / f"gateway-{self.port}.log" if work_dir is not None else None
        name = "gateway" if self.source == CHECKOUT else f"gateway from {self.source}"
        super().__init__(name, [sys.executable, "-m", "gateway.server"], env=environment, cwd=self.source, log=log)

    def wait_healthy(self, timeout_s: float = 60.0) -> "GatewayProcess":
        """Wait until ``/healthz`` answers (the process serves; Triton need not be ready)."""
        self.wait_ready(f"{self.url}/healthz", timeout_s)
        return self

    def wait_serving(self, timeout_s: float = 60.0, cancel: threading.Event | None = None) -> bool:
        """Wait until ``/readyz`` answers 200 (Triton reachable, its models ready); False when
        ``cancel`` was set first."""
        return self.wait_ready(f"{self.url}/readyz", timeout_s, cancel)
