"""A pool of decoder processes: compressed pixel data is never decoded in the calling process.

A worker that aborts (gdcm's assertions), panics (the Rust RLE decoder), segfaults, runs out
of its memory limit or past its deadline costs the one call it was serving an
:class:`~preprocessing.errors.InvalidDicom` ("the pixel data could not be decoded ...") and
is replaced; the caller keeps running. Workers are recycled after a number of tasks, so
whatever a decoder leaks or leaves fragmented is returned to the system.

Workers are forks of one **zygote**, a fresh interpreter started once per pool that has
numpy, pydicom and the decoder plugins loaded (see :mod:`preprocessing.decoder_worker`):
nothing of the caller (threads, gRPC state, uploaded bodies) is inherited, and a new worker
costs a fork, not an interpreter start. The pool is thread-safe: each call takes one idle
worker (most recently used first, so warm ones stay warm) and waits at most
``wait_s`` for one; more calls than workers queue there.

Services configure the process-wide pool once at startup (:func:`configure_decoder_pool`,
e.g. from the gateway's settings); :func:`decoder_pool` returns it, starting it lazily.
"""

from __future__ import annotations

import atexit
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidDicom, PreprocessingError, UnsupportedTransferSyntax

_WORKER_SCRIPT = Path(__file__).with_name("decoder_worker.py")
_FORK = struct.Struct("<q")
_ERRORS: dict[str, type[PreprocessingError]] = {
    "InvalidDicom": InvalidDicom,
    "UnsupportedTransferSyntax": UnsupportedTransferSyntax,
}


class DecoderBusy(PreprocessingError):
    """Every decoder worker stayed busy for the pool's whole ``wait_s``: the service is
    overloaded, the input is not at fault (the gateway answers 503 with Retry-After)."""

    code = "decoder_busy"


@dataclass(frozen=True)
class DecoderPoolConfig:
    """How many decoder processes, and what each may spend. Units are in the names."""

    #: Worker processes decoding at once.
    workers: int = 2
    #: Address space of one worker (``RLIMIT_AS``), its ~200 MiB of libraries included.
    memory_limit_bytes: int = 1 << 30
    #: Longest one call (a batch of frames of one instance) may take before its worker is killed.
    deadline_s: float = 10.0
    #: Calls one worker serves before it is replaced.
    tasks_per_worker: int = 200
    #: Longest a call waits for an idle worker before :class:`DecoderBusy`.
    wait_s: float = 30.0


class _Worker:
    """One forked worker: its socket, a pidfd to signal it safely, and its task count."""

    def __init__(self, connection: Connection, pid: int, pidfd: int) -> None:
        self.connection = connection
        self.pid = pid
        self.pidfd = pidfd
        self.tasks = 0

    def alive(self) -> bool:
        return not select.select([self.pidfd], [], [], 0)[0]  # a pidfd turns readable when the process ends

    def kill(self) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        select.select([self.pidfd], [], [], 5.0)

    def close(self, *, kill: bool = False) -> None:
        """Stop the worker (politely unless ``kill``, then by SIGKILL after 1 s) and wait
        until it has ended."""
        if not kill:
            try:
                self.connection.send(None)
            except OSError:
                pass
        if kill or not select.select([self.pidfd], [], [], 1.0)[0]:
            self.kill()
        self.connection.close()
        os.close(self.pidfd)


class DecoderPool:
    """Decoder worker processes with a memory limit, a deadline per call and recycling."""

    def __init__(self, config: DecoderPoolConfig | None = None) -> None:
        self.config = config or DecoderPoolConfig()
        if self.config.workers < 1:
            raise ValueError("a decoder pool needs at least one worker")
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._zygote: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(self.config.workers):
            self._idle.put(None)  # a free slot; its worker is forked on first use
        self._workers: set[_Worker] = set()
        self._closed = False

    def start(self) -> None:
        """Start the zygote and every worker now, not at the first call (e.g. at server start)."""
        taken = [self._take() for _ in range(self.config.workers)]
        for worker in taken:
            self._give_back(worker)

    def decode_frames(self, syntax: str, attributes: dict[str, Any], frames: list[bytes]) -> list[np.ndarray]:
        """Stored values of each encoded frame (see :func:`preprocessing.decoder_worker.decode_frames`).

        Raises :class:`InvalidDicom` when the frames cannot be decoded, whatever happened to
        the worker, :class:`UnsupportedTransferSyntax` and :class:`DecoderBusy`.
        """
        worker = self._take()
        try:
            worker.tasks += 1
            answer = self._call(worker, (syntax, attributes, frames))
        except BaseException:
            self._retire(worker, kill=True)
            raise
        if answer[0] == "ok":
            self._give_back(worker)
            return answer[1]
        _, kind, message, retire = answer
        if retire:
            self._retire(worker)
        else:
            self._give_back(worker)
        raise _ERRORS.get(kind, InvalidDicom)(message)

    def calls_in_flight(self) -> int:
        """Calls holding a worker right now (for monitoring and tests)."""
        return self.config.workers - self._idle.qsize()

    def worker_pids(self) -> list[int]:
        """Process ids of the workers started and not yet retired (for monitoring and tests)."""
        with self._lock:
            return sorted(worker.pid for worker in self._workers)

    def close(self) -> None:
        """Stop every worker and the zygote; waits until they have ended. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.close(kill=True)
        if self._control is not None:
            self._control.close()
        if self._zygote is not None:
            try:
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()

    def __enter__(self) -> DecoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, worker: _Worker, request: tuple) -> tuple:
        deadline_s = self.config.deadline_s
        try:
            worker.connection.send(request)
            ready = worker.connection.poll(deadline_s)
        except OSError:
            ready = True  # the worker is gone; recv says so
        if not ready:
            raise InvalidDicom(
                f"the pixel data could not be decoded within the decoder's deadline of {deadline_s:g} s"
            )
        try:
            return worker.connection.recv()
        except (EOFError, OSError):
            raise InvalidDicom(
                "the pixel data could not be decoded: the decoder process ended while decoding it "
                "(a crash of the codec on this data); re-export the image, or send it uncompressed"
            ) from None

    def _take(self) -> _Worker:
        try:
            worker = self._idle.get(timeout=self.config.wait_s)
        except queue.Empty:
            raise DecoderBusy(
                f"every pixel data decoder stayed busy for {self.config.wait_s:g} s; retry later"
            ) from None
        if worker is not None and worker.alive():
            return worker
        if worker is not None:
            self._forget(worker, kill=False)
        try:
            return self._fork()
        except BaseException:
            self._idle.put(None)
            raise

    def _give_back(self, worker: _Worker) -> None:
        if self._closed or worker.tasks >= self.config.tasks_per_worker:
            self._retire(worker)
        else:
            self._idle.put(worker)

    def _retire(self, worker: _Worker, *, kill: bool = False) -> None:
        self._forget(worker, kill=kill)
        self._idle.put(None)

    def _forget(self, worker: _Worker, *, kill: bool) -> None:
        with self._lock:
            known = worker in self._workers
            self._workers.discard(worker)
        if known:
            worker.close(kill=kill)

    def _fork(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the decoder pool is closed")
            if os.getpid() != self._owner:
                raise RuntimeError("a decoder pool belongs to the process that created it")
            control = self._ensure_zygote()
            control.sendall(_FORK.pack(self.config.memory_limit_bytes))
            message, fds, _, _ = socket.recv_fds(control, 8, 2)
            if len(message) < 8 or len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                raise RuntimeError("the decoder zygote did not start a worker")
            (pid,) = struct.unpack("<q", message)
            worker = _Worker(Connection(fds[0]), pid, fds[1])
            self._workers.add(worker)
            return worker

    def _ensure_zygote(self) -> socket.socket:
        if self._zygote is not None and self._zygote.poll() is None and self._control is not None:
            return self._control
        if self._control is not None:
            self._control.close()
        ours, theirs = socket.socketpair()
        environment = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._zygote = subprocess.Popen(
            [sys.executable, str(_WORKER_SCRIPT), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,  # Ctrl-C on the server's terminal is the server's to handle
        )
        theirs.close()
        self._control = ours
        return ours


_config = DecoderPoolConfig()
_pool: DecoderPool | None = None
_pool_lock = threading.Lock()


def configure_decoder_pool(config: DecoderPoolConfig | None = None, **changes: Any) -> DecoderPoolConfig:
    """Set the process-wide pool's configuration (a whole config, or fields to change); a
    pool already running is closed, and the next call starts one with the new settings."""
    global _config, _pool
    with _pool_lock:
        _config = replace(config or _config, **changes)
        old, _pool = _pool, None
    if old is not None:
        old.close()
    return _config


def decoder_pool() -> DecoderPool:
    """The process-wide pool (created on first use; a forked child gets its own)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._owner != os.getpid():
            _pool = DecoderPool(_config)
        return _pool


def close_decoder_pool() -> None:
    """Stop the process-wide pool's processes (also run at interpreter exit)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and pool._owner == os.getpid():
        pool.close()


atexit.register(close_decoder_pool)
