"""``medserve run``: the whole stack on one machine (what ``make run`` does), kept up.

Serves a model repository as it is: starts the real tritonserver on it, the gateway and the
DIMSE receiver (``python -m dimse``, AE title ``MEDSERVE`` on ``MEDSERVE_DIMSE_PORT``, 11112 by
default, its spool and job store under the work directory), waits for them, prints a working
``curl`` for a model the repository actually holds and the ``echoscu`` / ``storescu`` lines that
reach the receiver, then supervises them (a receiver that dies is restarted like the gateway). The demo zoo is exported (where missing or stale, about 2 minutes the first time) only
into the default repository (``model_repository/`` of the checkout) or when asked
(``demo_models=True``, ``--demo-models``); a repository of one's own is never written to
(``--no-demo-models`` also leaves the default one as it is).

Supervision:

- a **gateway** that exits (a native decoder that aborts, an OOM kill) is restarted; Triton
  keeps running and is not touched. The new gateway removes the shared-memory regions the
  dead one left (:mod:`gateway.triton`).
- a **Triton** that exits is cleaned up after — its process group, any Python-backend stub
  still running, the stubs' shared memory — and restarted. The gateway keeps running: it
  answers 503 meanwhile and reconnects by itself (``/readyz`` goes 503, then 200).

Every restart is logged with the exit status (code or signal). A restart waits a backoff that
doubles with each restart of that process within the window (0.5 s, 1 s, 2 s, ... at most
10 s); more than ``max_restarts`` within ``window_s`` means something is broken for good,
and the supervisor stops everything and exits 1 saying so. Ctrl-C (or SIGTERM) stops both.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .processes import CHECKOUT, GatewayProcess, ServerProcess, ServerStartFailed, describe_exit
from .tritonserver import TritonPorts, TritonServer

DEMO_MODEL = "ct_nodule_classifier"
#: The repository ``make run`` serves when given none: the demo zoo is exported into it.
DEFAULT_REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"
#: How often the supervisor looks at its processes (seconds).
POLL_S = 0.25


@dataclass(frozen=True)
class RestartPolicy:
    """How often a process that dies is started again.

    ``max_restarts`` restarts of one process within ``window_s`` seconds are allowed (read
    from ``MEDSERVE_RUN_MAX_RESTARTS`` and ``MEDSERVE_RUN_RESTART_WINDOW_S``); the n-th of
    them waits ``backoff_initial_s * 2**(n-1)`` seconds, at most ``backoff_max_s``.
    """

    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0

    @classmethod
    def from_environment(cls) -> "RestartPolicy":
        defaults = cls()
        return cls(
            max_restarts=int(os.environ.get("MEDSERVE_RUN_MAX_RESTARTS", defaults.max_restarts)),
            window_s=float(os.environ.get("MEDSERVE_RUN_RESTART_WINDOW_S", defaults.window_s)),
        )


class RestartHistory:
    """The recent restarts of one process, against a :class:`RestartPolicy`."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._times: deque[float] = deque()

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before the restart due at ``now``, or None when it would exceed
        the policy's rate (give up). Records the restart."""
        while self._times and now - self._times[0] > self.policy.window_s:
            self._times.popleft()
        if len(self._times) >= self.policy.max_restarts:
            return None
        self._times.append(now)
        return min(self.policy.backoff_max_s, self.policy.backoff_initial_s * 2 ** (len(self._times) - 1))

    @property
    def recent(self) -> int:
        return len(self._times)


class Supervised(Protocol):
    """A process the supervisor keeps running (a :class:`devtools.processes.ServerProcess`)."""

    name: str

    @property
    def pid(self) -> int | None: ...

    @property
    def returncode(self) -> int | None: ...

    def start(self) -> object:
        """Start the process and return at once."""

    def stop(self) -> None:
        """Stop the process, or reap what it left when it died."""


class TritonProcess:
    """:class:`TritonServer` as a supervised process (started without waiting for its models)."""

    name = "tritonserver"

    def __init__(self, server: TritonServer) -> None:
        self.server = server

    @property
    def pid(self) -> int | None:
        return self.server.pid

    @property
    def returncode(self) -> int | None:
        return self.server.returncode

    def start(self) -> None:
        self.server.launch()

    def stop(self) -> None:
        self.server.stop()


def dimse_receiver(work_dir: Path, host: str, port: int) -> ServerProcess:
    """The DIMSE receiver as production starts it, ``python -m dimse`` from the checkout, its
    spool and SQLite job store under ``work_dir`` (its output: ours)."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH", "")])),
        MEDSERVE_WORK_DIR=str(work_dir), MEDSERVE_DIMSE_HOST=host, MEDSERVE_DIMSE_PORT=str(port),
    )
    return ServerProcess("dimse receiver", [sys.executable, "-m", "dimse"], env=env, cwd=CHECKOUT)


def wait_for_receiver(receiver: ServerProcess, host: str, port: int, ae_title: str, timeout_s: float, cancel: threading.Event) -> bool:
    """Wait until the receiver answers C-ECHO: True; False when ``cancel`` is set first;
    :class:`ServerStartFailed` when it exits first or is not up in time."""
    from dimse.echo import echo

    deadline = time.monotonic() + timeout_s
    while not cancel.is_set():
        if receiver.returncode is not None:
            raise ServerStartFailed(f"{receiver.name} {describe_exit(receiver.returncode)} before it was ready")
        if echo(host, port, ae_title, timeout_s=2.0):
            return True
        if time.monotonic() > deadline:
            receiver.stop()
            raise ServerStartFailed(f"{receiver.name} did not answer C-ECHO on {host}:{port} within {timeout_s:g} s")
        cancel.wait(POLL_S)
    return False


def say(message: str, error: bool = False) -> None:
    print(f"medserve run: {message}", file=sys.stderr if error else sys.stdout, flush=True)


def supervise(processes: list[Supervised], policy: RestartPolicy, stop: threading.Event) -> int:
    """Restart each of ``processes`` that exits, until ``stop`` is set (0) or one of them
    exits more often than ``policy`` allows (1). Leaves them running: the caller stops them."""
    histories = {process.name: RestartHistory(policy) for process in processes}
    while not stop.wait(POLL_S):
        for process in processes:
            returncode = process.returncode
            if returncode is None:
                continue
            pid = process.pid
            process.stop()  # reap what it left behind
            history = histories[process.name]
            delay = history.next_delay(time.monotonic())
            if delay is None:
                say(
                    f"{process.name} (pid {pid}) {describe_exit(returncode)}; it was restarted {policy.max_restarts} times "
                    f"within {policy.window_s:.0f} s already, giving up (MEDSERVE_RUN_MAX_RESTARTS, MEDSERVE_RUN_RESTART_WINDOW_S)",
                    error=True,
                )
                return 1
            say(
                f"{process.name} (pid {pid}) {describe_exit(returncode)}; restarting it in {delay:.1f} s "
                f"(restart {history.recent} of at most {policy.max_restarts} within {policy.window_s:.0f} s)",
                error=True,
            )
            if stop.wait(delay):
                return 0
            process.start()
            say(f"{process.name} restarted (pid {process.pid})")
    return 0


def write_demo_instance(path: Path) -> Path:
    """A phantom chest-CT slice with a nodule, for the printed curl example."""
    import numpy as np

    from .dicomgen import ct_dataset
    from .phantoms import chest_slice

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        phantom = chest_slice(np.random.default_rng(7), size=512, nodules=1, field_of_view_mm=360.0)
        ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm).save_as(path, enforce_file_format=True)
    return path


def repository_models(repository: Path) -> list[str]:
    """The models Triton will find in ``repository``: its folders holding a ``config.pbtxt``,
    sorted by name (what the printed example picks from)."""
    if not repository.is_dir():
        return []
    return sorted(entry.name for entry in repository.iterdir() if (entry / "config.pbtxt").is_file())


def exports_demo_zoo(repository: Path, demo_models: bool | None) -> bool:
    """Whether ``run`` exports the demo zoo into ``repository``: as asked, or when not asked,
    only for :data:`DEFAULT_REPOSITORY` (compared resolved, so ``model_repository`` relative
    to the checkout counts)."""
    if demo_models is not None:
        return demo_models
    return repository.resolve() == DEFAULT_REPOSITORY.resolve()


def example_lines(models: list[str], url: str, demo_instance: Path | None, poll_s: int = 5) -> list[str]:
    """The ``predict`` lines of the ready message, for a model the repository serves: the demo
    classifier with the demo chest-CT slice when it is there; otherwise the first model, with
    what to send it (its card names the modality and the preprocessing); none when the
    repository is empty (Triton polls it, so models added later are served)."""
    if DEMO_MODEL in models and demo_instance is not None:
        return [f"  predict:  curl -s -X POST -H 'Content-Type: application/dicom' --data-binary @{demo_instance} {url}/v1/models/{DEMO_MODEL}/predict"]
    if not models:
        return [f"  predict:  (the repository holds no model yet; Triton polls it every {poll_s} s, so a model directory added there is served)"]
    name = models[0]
    return [
        f"  predict:  curl -s -X POST -H 'Content-Type: application/dicom' --data-binary @YOUR.dcm {url}/v1/models/{name}/predict",
        f"            (send DICOM of the modality and kind {name} expects: curl -s {url}/v1/models/{name} lists its inputs;"
        " a series as multipart/form-data, one file per part)",
    ]


def run(
    repository: Path,
    work_dir: Path,
    host: str,
    port: int,
    triton_ports: TritonPorts,
    policy: RestartPolicy | None = None,
    demo_models: bool | None = None,
    dimse_port: int = 11112,
) -> int:
    """Serve ``repository`` until Ctrl-C; the exit status. ``demo_models``: export the demo zoo
    into it where missing or stale (None: only when it is :data:`DEFAULT_REPOSITORY`)."""
    policy = policy or RestartPolicy.from_environment()
    repository = Path(repository)
    if exports_demo_zoo(repository, demo_models):
        from devtools.zoo.repository import ensure_demo_repository
        from export.pipeline import ExportOptions

        # progress bars on a terminal (make run), none in a log file (the tests)
        exported = ensure_demo_repository(repository, options=ExportOptions(progress=sys.stderr.isatty()))
        if exported:
            print(f"exported into {repository}: {', '.join(exported)}")
    elif not repository.is_dir():
        say(f"no model repository at {repository}", error=True)
        return 2
    models = repository_models(repository)
    say(f"serving {repository}: {', '.join(models) or 'no models yet'}")
    demo = write_demo_instance(work_dir / "demo" / "chest_ct_nodule.dcm") if DEMO_MODEL in models else None

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    server = TritonServer(repository, work_dir / "triton", ports=triton_ports)
    triton = TritonProcess(server)
    # one work directory for the node: the gateway's job store is the receiver's
    gateway = GatewayProcess(server.grpc_url, host=host, port=port, settings={"work_dir": str(work_dir / "node")})  # its output: ours
    dimse_ae = os.environ.get("MEDSERVE_DIMSE_AE_TITLE", "MEDSERVE")
    receiver = dimse_receiver(work_dir / "node", host, dimse_port)
    try:
        say(f"starting tritonserver (log: {server.log_file}) ...")
        triton.start()
        if not server.wait_ready(120, cancel=stop):
            return 0
        say(f"tritonserver ready (pid {triton.pid})")
        gateway.start()
        if not gateway.wait_serving(60, cancel=stop):
            return 0
        say(f"gateway ready (pid {gateway.pid})")
        receiver.start()
        if not wait_for_receiver(receiver, host, dimse_port, dimse_ae, 60, stop):
            return 0
        say(f"dimse receiver ready (pid {receiver.pid}, spool {work_dir / 'node' / 'spool'})")
        print(
            "\nmedserve is ready.\n"
            f"  page:     {gateway.url}/ui/   (models and their export reports, try a DICOM file, jobs)\n"
            f"  models:   curl -s {gateway.url}/v1/models\n"
            + "".join(line + "\n" for line in example_lines(models, gateway.url, demo, server.poll_seconds))
            + f"  DICOM:    echoscu -aec {dimse_ae} {host} {dimse_port}\n"
            + f"            storescu -aec {dimse_ae} +sd {host} {dimse_port} YOUR_SERIES_FOLDER\n"
            + f"  docs:     {gateway.url}/docs   metrics: {gateway.url}/metrics   Triton metrics: http://127.0.0.1:{triton_ports.metrics}/metrics\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        return supervise([triton, gateway, receiver], policy, stop)
    except ServerStartFailed as exc:
        say(str(exc), error=True)
        return 1
    finally:
        say("stopping ...")
        receiver.stop()
        gateway.stop()
        triton.stop()
        say("stopped.")
