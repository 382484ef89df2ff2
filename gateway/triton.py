"""Async gRPC access to Triton, with its errors translated in exactly one place.

One channel per gateway process (connection reuse); message-size limits lifted so that 3D
volumes fit; every call carries a deadline.

When Triton runs on the same host (a loopback URL), large inputs travel through Triton's
*system shared memory* instead of the gRPC message: the gateway writes the tensor once into
a POSIX shared-memory region registered with Triton, and the request only names the region.
That skips the protobuf copies and the socket transfer of megabytes per 3D volume. Regions
are pooled by size and reused; if Triton cannot map them (another container, another host),
the client falls back to plain gRPC for good.
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from .errors import InferenceFailed, InferenceTimeout, ModelNotFound, ModelNotReady, TritonUnavailable

log = logging.getLogger("medserve.gateway.triton")

#: Inputs at least this large go through shared memory (when it is available).
SHARED_MEMORY_MIN_BYTES = 256 * 1024
#: Most bytes of shared-memory regions one gateway process keeps registered with Triton.
SHARED_MEMORY_MAX_BYTES = 256 * 1024 * 1024
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_SHM_DIR = "/dev/shm"

_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
]


@asynccontextmanager
async def translated_errors(model: str | None = None) -> AsyncIterator[None]:
    """Map tritonclient / gRPC failures onto :mod:`gateway.errors`."""
    try:
        yield
    except InferenceServerException as exc:
        status, message = str(exc.status() or ""), exc.message() or ""
        if "DEADLINE_EXCEEDED" in status or "Deadline Exceeded" in message:
            raise InferenceTimeout(f"Triton did not answer within the deadline for model {model!r}") from exc
        if "UNAVAILABLE" in status and "unknown model" not in message.lower():
            raise TritonUnavailable("the inference server (Triton) is not reachable") from exc
        lowered = message.lower()
        if "unknown model" in lowered or "not found" in lowered:
            raise ModelNotFound(f"Triton does not serve a model named {model!r}") from exc
        if "not ready" in lowered or "unavailable" in lowered:
            raise ModelNotReady(f"model {model!r} is not ready in Triton") from exc
        raise InferenceFailed(f"Triton failed on model {model!r}: {message}") from exc


class _Region:
    """One POSIX shared-memory region (``/dev/shm/<name>``, mode 0600: it holds pixel data),
    registered with Triton under ``name``. Its memory is reserved up front
    (``posix_fallocate``), so a full ``/dev/shm`` fails here, with a fallback, instead of
    faulting on a later write."""

    _numbers = itertools.count()

    def __init__(self, size: int) -> None:
        self.name = f"medserve_{os.getpid()}_{next(self._numbers)}"
        self.size = size
        self.key = "/" + self.name
        path = os.path.join(_SHM_DIR, self.name)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
            self.buffer = mmap.mmap(fd, size)
        except OSError:
            os.unlink(path)
            raise
        finally:
            os.close(fd)

    def write(self, array: np.ndarray) -> None:
        np.ndarray(array.shape, array.dtype, buffer=self.buffer)[...] = array

    def destroy(self) -> None:
        self.buffer.close()
        try:
            os.unlink(os.path.join(_SHM_DIR, self.name))
        except FileNotFoundError:
            pass


class SharedMemoryPool:
    """Regions by power-of-two size, registered once and reused; at most ``max_bytes`` in all.

    A region is lent for one inference and given back when Triton answered; after a failed or
    timed-out call it is retired instead, since Triton may still read it.
    """

    def __init__(self, client: grpcaio.InferenceServerClient, timeout_s: float, max_bytes: int = SHARED_MEMORY_MAX_BYTES) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._free: dict[int, list[_Region]] = {}
        self._all: dict[str, _Region] = {}
        self.available = True

    @property
    def registered_bytes(self) -> int:
        return sum(region.size for region in self._all.values())

    async def acquire(self, nbytes: int) -> _Region | None:
        """A region of at least ``nbytes``, or None (pool full, or shared memory unusable)."""
        if not self.available:
            return None
        size = 1 << max(nbytes - 1, 1).bit_length()
        free = self._free.get(size)
        if free:
            return free.pop()
        if self.registered_bytes + size > self._max_bytes:
            return None
        try:
            region = _Region(size)
        except OSError as exc:  # no /dev/shm, or it is full
            log.warning("no shared memory for an input; it goes over gRPC", extra={"reason": str(exc)})
            return None
        try:
            await self._client.register_system_shared_memory(region.name, region.key, size, client_timeout=self._timeout_s)
        except InferenceServerException as exc:
            region.destroy()
            self.available = False
            log.warning("Triton cannot map the gateway's shared memory; inputs go over gRPC", extra={"reason": exc.message()})
            return None
        self._all[region.name] = region
        return region

    def release(self, region: _Region) -> None:
        if region.name in self._all:
            self._free.setdefault(region.size, []).append(region)
        else:
            region.destroy()

    async def retire(self, region: _Region) -> None:
        """Unregister (best effort: Triton may be gone) and unlink ``region``."""
        self._all.pop(region.name, None)
        try:
            await self._client.unregister_system_shared_memory(region.name, client_timeout=self._timeout_s)
        except Exception:
            log.debug("unregistering %s failed", region.name, exc_info=True)
        finally:
            region.destroy()

    async def reset(self) -> None:
        """Retire every region, e.g. after Triton restarted and forgot them; regions lent
        out right now are retired when they come back."""
        free = [region for regions in self._free.values() for region in regions]
        self._free.clear()
        for region in free:
            await self.retire(region)

    async def close(self) -> None:
        for region in list(self._all.values()):
            await self.retire(region)
        self._free.clear()


def _is_loopback(url: str) -> bool:
    return url.rpartition(":")[0] in _LOOPBACK_HOSTS


class TritonClient:
    """The gateway's view of Triton: health, repository index, configs and inference.

    ``shared_memory``: send large inputs through system shared memory; None (default) uses it
    when ``url`` is a loopback address, i.e. Triton runs on this host.
    """

    def __init__(self, url: str, timeout_s: float, probe_timeout_s: float, shared_memory: bool | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.probe_timeout_s = probe_timeout_s
        self._client = grpcaio.InferenceServerClient(url=url, channel_args=_CHANNEL_ARGS)
        use_shared_memory = _is_loopback(url) if shared_memory is None else shared_memory
        self._shared_memory = SharedMemoryPool(self._client, probe_timeout_s) if use_shared_memory else None

    async def close(self) -> None:
        if self._shared_memory is not None:
            try:
                await self._shared_memory.close()
            except Exception:  # Triton may be gone already; the regions are unlinked regardless
                log.debug("unregistering shared memory failed", exc_info=True)
        await self._client.close()

    async def server_ready(self) -> bool:
        try:
            async with translated_errors():
                return bool(await self._client.is_server_ready(client_timeout=self.probe_timeout_s))
        except (TritonUnavailable, InferenceTimeout, InferenceFailed):
            return False

    async def model_ready(self, model: str) -> bool:
        async with translated_errors(model):
            return bool(await self._client.is_model_ready(model, client_timeout=self.probe_timeout_s))

    async def repository_index(self) -> list[dict[str, Any]]:
        async with translated_errors():
            index = await self._client.get_model_repository_index(as_json=True, client_timeout=self.probe_timeout_s)
        return list(index.get("models", []))

    async def model_config(self, model: str) -> dict[str, Any]:
        async with translated_errors(model):
            response = await self._client.get_model_config(model, as_json=True, client_timeout=self.probe_timeout_s)
        return dict(response.get("config", {}))

    async def infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: list[str], request_id: str = ""
    ) -> tuple[dict[str, np.ndarray], str]:
        """Run one inference; returns the named outputs and the model version that answered."""
        try:
            return await self._infer(model, inputs, outputs, request_id, self._shared_memory)
        except (InferenceFailed, ModelNotFound) as exc:
            if self._shared_memory is None or "shared memory" not in str(exc).lower():
                raise
            # Triton no longer knows our regions (it restarted): start the pool afresh and
            # send this request over gRPC.
            log.warning("Triton lost the gateway's shared-memory regions; registering new ones")
            await self._shared_memory.reset()
            return await self._infer(model, inputs, outputs, request_id, None)

    async def _infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: list[str], request_id: str, pool: SharedMemoryPool | None
    ) -> tuple[dict[str, np.ndarray], str]:
        infer_inputs, lent = [], []
        try:
            for name, array in inputs.items():
                tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
                region = None
                if pool is not None and array.nbytes >= SHARED_MEMORY_MIN_BYTES and array.dtype != np.object_:
                    region = await pool.acquire(array.nbytes)
                if region is not None:
                    lent.append(region)
                    region.write(array)
                    tensor.set_shared_memory(region.name, array.nbytes)
                else:
                    tensor.set_data_from_numpy(array)
                infer_inputs.append(tensor)
            requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
            async with translated_errors(model):
                result = await self._client.infer(
                    model, infer_inputs, outputs=requested, request_id=request_id, client_timeout=self.timeout_s
                )
        except BaseException as exc:
            # Triton is done with the regions once it answered, even with an error; after a
            # timeout, a lost connection or a cancellation it may still read them.
            answered = isinstance(exc, (InferenceFailed, ModelNotFound, ModelNotReady))
            for region in lent:
                assert pool is not None
                if answered:
                    pool.release(region)
                else:
                    await pool.retire(region)
            raise
        for region in lent:
            assert pool is not None
            pool.release(region)
        version = result.get_response().model_version
        return {name: result.as_numpy(name) for name in outputs}, version
