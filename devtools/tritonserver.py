"""Run the real Triton Inference Server that ships inside the ``nvidia-pytriton`` wheel.

That build is CPU-only with the Python backend, which is all development and CI need: models
run through the generic ONNX runner that export writes. Launch recipe: copy
``libtriton_python.so`` + utils and the stub for *this* Python into a backend directory we own,
put the wheel's bundled libraries and this interpreter's ``libpython`` on ``LD_LIBRARY_PATH``,
and make the stub import numpy/onnxruntime from this environment.

The server is a :class:`devtools.processes.ServerProcess`: its own process group, started,
awaited and stopped like the gateway; its Python-backend stubs (one process per model
instance) run in that group. Stopping it — or cleaning up after it died, even by SIGKILL —
signals the whole group, then kills any stub of this server's backend directory that is still
running (a stub re-parented to init once its Triton died) and unlinks the stub's
``/dev/shm/triton_python_backend_shm_region_*`` region, so nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path

from .processes import ServerProcess, ServerStartFailed, free_ports


class TritonNotInstalled(RuntimeError):
    """The nvidia-pytriton wheel (which carries the tritonserver binary) is not installed."""


class TritonStartFailed(ServerStartFailed):
    """tritonserver exited or did not become ready in time; the message holds its log tail."""


@dataclass(frozen=True)
class TritonPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @classmethod
    def free(cls) -> "TritonPorts":
        """Three different, currently unused loopback ports (for tests running beside a dev server)."""
        return cls(*free_ports(3))


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    libraries: Path
    python_backend: Path
    stub: Path

    @classmethod
    def locate(cls) -> "TritonInstall":
        try:
            import pytriton
        except ImportError as exc:
            raise TritonNotInstalled("install the 'triton' extra: pip install 'medserve[triton]'") from exc
        root = Path(pytriton.__file__).parent / "tritonserver"
        site = Path(pytriton.__file__).parent.parent
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        install = cls(
            binary=root / "bin" / "tritonserver",
            libraries=site / "nvidia_pytriton.libs",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        )
        for path in (install.binary, install.libraries, install.python_backend, install.stub):
            if not path.exists():
                raise TritonNotInstalled(f"nvidia-pytriton is incomplete: {path} is missing (Python {version})")
        return install

    def backend_directory(self, destination: Path) -> Path:
        """A backend directory holding the Python backend and the stub for this interpreter."""
        python_dir = destination / "python"
        python_dir.mkdir(parents=True, exist_ok=True)
        for source in (*self.python_backend.glob("*.so"), *self.python_backend.glob("*.py"), self.stub):
            target = python_dir / source.name
            if not target.exists() or target.stat().st_size != source.stat().st_size:
                shutil.copy2(source, target)
        return destination


def server_environment(install: TritonInstall) -> dict[str, str]:
    """Environment for tritonserver: bundled libs + this Python's libpython on the loader
    path, this environment's site-packages and ``bin`` for the Python-backend stub."""
    env = dict(os.environ)
    lib_dirs = [str(install.libraries), sysconfig.get_config_var("LIBDIR") or ""]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [*lib_dirs, env.get("LD_LIBRARY_PATH", "")]))
    site_packages = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [site_packages, env.get("PYTHONPATH", "")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class TritonServer:
    """A tritonserver process over one model repository.

    ``poll_seconds`` > 0 starts Triton in ``poll`` model-control mode, so models added to or
    removed from the repository are (un)loaded without a restart.
    """

    def __init__(
        self,
        model_repository: Path,
        work_dir: Path,
        ports: TritonPorts = TritonPorts(),
        poll_seconds: int = 5,
        log_file: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.work_dir = Path(work_dir).resolve()
        self.ports = ports
        self.poll_seconds = poll_seconds
        self.log_file = log_file or self.work_dir / "tritonserver.log"
        self.extra_args = extra_args
        self._process: ServerProcess | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    def command(self, install: TritonInstall) -> list[str]:
        args = [
            str(install.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={install.backend_directory(self.work_dir / 'backends')}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--allow-metrics=true",
            "--log-verbose=0",
            "--exit-on-error=false",
            "--strict-readiness=true",
        ]
        if self.poll_seconds > 0:
            args += ["--model-control-mode=poll", f"--repository-poll-secs={self.poll_seconds}"]
        return args + list(self.extra_args)

    def start(self, ready_timeout_s: float = 120.0) -> "TritonServer":
        """Launch the server and wait until it is ready (its models loaded)."""
        self.launch()
        self.wait_ready(ready_timeout_s)
        return self

    def launch(self) -> None:
        """Start the server process and return at once (see :meth:`wait_ready`)."""
        install = TritonInstall.locate()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._process = ServerProcess("tritonserver", self.command(install), env=server_environment(install), log=self.log_file).start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status once the server exited (negative: the signal that ended it);
        None while it runs or before it was started."""
        return self._process.returncode if self._process is not None else None

    @property
    def stub_path(self) -> Path:
        """Where this server's Python-backend stub binary lives (it is launched from there)."""
        return self.work_dir / "backends" / "python" / "triton_python_backend_stub"

    def wait_ready(self, timeout_s: float, cancel: threading.Event | None = None) -> bool:
        """Wait until the server is ready: True; False when ``cancel`` was set first. When it
        exits first or is not ready in time it is stopped (:meth:`stop`) and
        :class:`TritonStartFailed` raised with its log tail."""
        if self._process is None:
            raise TritonStartFailed("tritonserver was not launched")
        try:
            return self._process.wait_ready(f"{self.http_url}/v2/health/ready", timeout_s, cancel)
        except ServerStartFailed as exc:
            self.stop()
            raise TritonStartFailed(str(exc)) from None

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the whole process group (Triton and its Python-backend stubs), then SIGKILL;
        then reap what a server that died left: its stubs and their shared memory."""
        stubs = running_stubs(self.stub_path)
        if self._process is not None:
            self._process.stop(timeout_s)  # Triton, then the stubs that outlived it
        reap_stubs(stubs)

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The Python backend names the region it shares with a stub in the stub's third argument.
_STUB_REGION_PREFIX = "triton_python_backend_shm_region"


@dataclass(frozen=True)
class Stub:
    """A running ``triton_python_backend_stub`` process and its shared-memory region."""

    pid: int
    region: str | None


def running_stubs(stub_path: Path, proc: Path = Path("/proc")) -> list[Stub]:
    """The processes launched from ``stub_path`` (so: stubs of our servers only, never another
    Triton's), read from ``/proc/<pid>/cmdline``."""
    stubs = []
    wanted = str(stub_path).encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if argv[0] != wanted:
            continue
        region = argv[2].decode(errors="replace") if len(argv) > 2 and argv[2].startswith(_STUB_REGION_PREFIX.encode()) else None
        stubs.append(Stub(int(entry.name), region))
    return stubs


def reap_stubs(stubs: list[Stub], shm_dir: Path = Path("/dev/shm")) -> None:
    """SIGKILL ``stubs`` (a dead Triton's stubs keep running, holding memory) and unlink the
    regions they shared with it."""
    for stub in stubs:
        try:
            os.kill(stub.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for stub in stubs:
        if stub.region and "/" not in stub.region:
            try:
                (shm_dir / stub.region).unlink()
            except FileNotFoundError:
                pass
