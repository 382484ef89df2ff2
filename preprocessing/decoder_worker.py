"""The worker side of :mod:`preprocessing.decoder_pool`: compressed frames in, stored values out.

Native codecs (gdcm, OpenJPEG, libjpeg, CharLS, the RLE decoder) are C, C++ and Rust run on
untrusted bytes: an assertion aborts the process (gdcm on a JPEG 2000 codestream whose
(0028,0004) *Photometric Interpretation* disagrees with it), a panic or a segfault ends it.
So they run here, in a process of their own, never in a server.

This file runs three ways:

* as a **zygote** (``python decoder_worker.py`` started by the pool): a fresh interpreter that
  imports numpy, pydicom and every decoder plugin once, then forks one worker per request of
  the pool. A fork of a warm zygote costs a few milliseconds, a fresh interpreter ~0.5 s, and
  the server's own state (threads, gRPC channels, caches) is never inherited;
* as a **worker** (a fork of the zygote): caps its address space (``RLIMIT_AS``), then
  answers decode requests on its socket until told to stop or the socket closes;
* as a **module** imported by :mod:`preprocessing.decode`, for :func:`classify_decoding_error`,
  the one place where a decoder failure becomes an error kind and a message.

It imports nothing from :mod:`preprocessing` (so the zygote does not load the whole package);
messages name transfer syntaxes and exception types, never element values (they may be PHI).
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import struct
import sys
from multiprocessing.connection import Connection
from typing import Any

#: Decoder plugins pydicom may call, imported by the zygote so that every fork has them.
_PLUGINS = ("gdcm", "openjpeg", "libjpeg", "rle", "jpeg_ls", "pylibjpeg")
#: Zygote command: fork a worker whose address space is capped at the given bytes.
_FORK = struct.Struct("<q")

#: (kind, message) of a failed request; kind names a class of :mod:`preprocessing.errors`.
Failure = tuple[str, str]


def classify_decoding_error(exc: BaseException, syntax: Any) -> Failure:
    """What a failure of pydicom or a decoder plugin means for the sender.

    ``syntax`` is the instance's (0002,0010) *Transfer Syntax UID* as a pydicom ``UID``.
    """
    name = getattr(syntax, "name", str(syntax))
    if isinstance(exc, NotImplementedError):
        return "UnsupportedTransferSyntax", (
            f"no installed decoder handles transfer syntax {syntax} ({name}); "
            "send it uncompressed or in a syntax listed by GET /v1/models/{name}"
        )
    if isinstance(exc, MemoryError):
        return "InvalidDicom", "the pixel data could not be decoded within the decoder's memory limit"
    if isinstance(exc, RuntimeError):
        if _any_decoder_available(syntax):
            return "InvalidDicom", (
                f"the {name} pixel data is corrupt: every installed decoder rejected it; "
                "re-export the image, or send it uncompressed"
            )
        return "UnsupportedTransferSyntax", f"no installed decoder handles transfer syntax {syntax} ({name})"
    return "InvalidDicom", f"the pixel data is truncated or inconsistent with its header ({type(exc).__name__})"


def _any_decoder_available(syntax: Any) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:
        return False


def decode_frames(syntax: str, attributes: dict[str, Any], frames: list[bytes]) -> list[Any]:
    """Stored values of each encoded frame, as ``pydicom.pixels.pixel_array`` returns them.

    ``attributes`` are the Image Pixel module's (0028,xxxx) values by keyword; the frames
    are re-encapsulated (one fragment each, with a basic offset table) into a dataset that
    holds only them, so pydicom decodes exactly what it would from the original object.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.pixels import pixel_array

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames)
    return [pixel_array(ds, index=index) for index in range(len(frames))]


def _answer(request: tuple[str, dict[str, Any], list[bytes]]) -> tuple:
    """``("ok", arrays)``, or ``("error", kind, message, retire)``: a worker that ran out of
    memory answers, then retires (its heap may be left fragmented or inconsistent)."""
    from pydicom.uid import UID

    syntax, attributes, frames = request
    try:
        return ("ok", decode_frames(syntax, attributes, frames))
    except Exception as exc:  # every failure of a decoder is the input's fault: typed, not raised
        if isinstance(exc, MemoryError) or _over_memory_limit(attributes, len(frames)):
            return ("error", *classify_decoding_error(MemoryError(), UID(syntax)), True)
        return ("error", *classify_decoding_error(exc, UID(syntax)), False)


def _over_memory_limit(attributes: dict[str, Any], frames: int) -> bool:
    """Whether the decoded values alone would not fit in the address space left: a codec
    that cannot allocate reports "failed to decode", not MemoryError."""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return False
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    values = attributes.get("Rows", 0) * attributes.get("Columns", 0) * attributes.get("SamplesPerPixel", 1)
    return values * max(1, attributes.get("BitsAllocated", 8) // 8) * frames > limit - used


def serve(connection: Connection, memory_limit_bytes: int) -> None:
    """Worker loop: one request, one answer, until ``None`` or the pool closes the socket."""
    if memory_limit_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        answer = _answer(request)
        try:
            connection.send(answer)
        except MemoryError:
            connection.send(("error", "InvalidDicom", "the decoded pixel data exceeds the decoder's memory limit", True))
            return
        except OSError:
            return
        if answer[0] == "error" and answer[3]:
            return


def _reap_workers(*_: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _zygote(control: socket.socket) -> None:
    """Fork a worker per command; hand the pool its socket and a pidfd (a handle on that
    process that stays valid after it ends, so a kill never reaches a recycled pid)."""
    import numpy  # noqa: F401  (loaded once, shared by every fork)
    import pydicom.pixels  # noqa: F401

    for plugin in _PLUGINS:
        try:
            __import__(plugin)
        except ImportError:
            pass
    # Ended workers are reaped here (not left to the kernel with SIG_IGN), so that their CPU
    # time adds up in this process's children times, where ps, /proc and benchmarks see it.
    signal.signal(signal.SIGCHLD, _reap_workers)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the server; it closes us
    while True:
        command = control.recv(_FORK.size)
        if len(command) < _FORK.size:
            return  # the pool closed its end: the server is gone or closed the pool
        (memory_limit_bytes,) = _FORK.unpack(command)
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            control.close()
            ours.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                serve(Connection(theirs.detach()), memory_limit_bytes)
            finally:
                os._exit(0)
        theirs.close()
        pidfd = os.pidfd_open(pid)
        socket.send_fds(control, [struct.pack("<q", pid)], [ours.fileno(), pidfd])
        ours.close()
        os.close(pidfd)


if __name__ == "__main__":
    _zygote(socket.socket(fileno=int(sys.argv[1])))
