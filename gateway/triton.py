"""Async gRPC access to Triton, with its errors translated in exactly one place.

One channel per gateway process (connection reuse); message-size limits lifted so that 3D
volumes fit; every call carries a deadline.

When Triton runs on the same host (a loopback URL), large inputs travel through Triton's
*system shared memory* instead of the gRPC message: the gateway writes the tensor once into
a POSIX shared-memory region registered with Triton, and the request only names the region.
That skips the protobuf copies and the socket transfer of megabytes per 3D volume. Outputs
come back the same way: their sizes are known before the call from the model's metadata
(datatype and shape, the batch axis being the inputs'), so the request names one region for
all of them, Triton writes the answer there, and the gateway copies it out before the region
is lent again (a 256³ two-class float32 answer is 134 MB). Regions are pooled by size and
reused; whatever does not fit (pool full, sizes not known up front) travels over gRPC.

What the regions survive:

- **Triton restarts.** A new Triton knows none of the old regions; the first inference that
  names one is answered "Unable to find shared memory region", the pool forgets every region
  and the request is sent again over gRPC; the next ones register fresh regions.
- **Triton unreachable.** A registration that fails for want of Triton (unavailable, deadline)
  fails that request (503 / 504) and changes nothing else.
- **Triton cannot map them** (another host or container): registration is refused with an
  error answer, and the client falls back to plain gRPC for good.
- **A gateway that died** (killed, or aborted in native code) leaves its regions in
  ``/dev/shm`` and registered in Triton. Regions are named ``medserve_<pid>_<n>``; a gateway
  starting up unlinks the files and unregisters the regions of every pid that is no longer
  alive (gateways sharing one ``/dev/shm`` must share a PID namespace, as one host or one
  pod with ``shareProcessNamespace`` do).

Deadlines: an inference call, its shared-memory registrations included, takes at most
``timeout_s``; regions Triton may still read after a timeout are unregistered in the
background, never on the request path.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import mmap
import os
import re
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from .errors import GatewayError, InferenceFailed, InferenceTimeout, ModelNotFound, ModelNotReady, TritonUnavailable

log = logging.getLogger("medserve.gateway.triton")

#: Inputs at least this large go through shared memory (when it is available).
SHARED_MEMORY_MIN_BYTES = 256 * 1024
#: Outputs come back through shared memory when together at least this large: below it the
#: gRPC message is cheap, and a small answer keeps no region busy.
SHARED_MEMORY_MIN_OUTPUT_BYTES = 1024 * 1024
#: Most bytes of shared-memory regions one gateway process keeps registered with Triton.
SHARED_MEMORY_MAX_BYTES = 256 * 1024 * 1024
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_SHM_DIR = "/dev/shm"
#: Outputs sharing one region start at multiples of this many bytes.
_OUTPUT_ALIGNMENT = 64
#: ``medserve_<pid>_<n>``: the gateway process that owns a region, and its number there.
_REGION_NAME = re.compile(r"^medserve_(?P<pid>\d+)_\d+$")

_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
]


#: gRPC status codes as tritonclient writes them (``str(grpc.StatusCode.X)``).
_DEADLINE_EXCEEDED = "StatusCode.DEADLINE_EXCEEDED"
_UNAVAILABLE = "StatusCode.UNAVAILABLE"
_NOT_FOUND = "StatusCode.NOT_FOUND"
_INVALID_ARGUMENT = "StatusCode.INVALID_ARGUMENT"


def _unreachable(exc: InferenceServerException) -> bool:
    """Triton did not answer (down, restarting, or past the deadline), as opposed to
    answering with an error."""
    status, message = str(exc.status() or ""), exc.message() or ""
    return status in (_UNAVAILABLE, _DEADLINE_EXCEEDED) or "Deadline Exceeded" in message


def translate_error(exc: InferenceServerException, model: str | None = None) -> GatewayError:
    """The :mod:`gateway.errors` error for a tritonclient failure: by its gRPC status code
    first, by its message only where the code does not decide (no code, or one Triton uses
    for many causes, such as INTERNAL).

    - DEADLINE_EXCEEDED: the call ran past its deadline (504).
    - UNAVAILABLE: Triton is not reachable (503); Triton versions that answer an unknown
      model with UNAVAILABLE say "unknown model" (404).
    - NOT_FOUND: no such model or version (404); a shared-memory region Triton does not know
      (it restarted) is a failed inference, which :meth:`TritonClient.infer` sends again.
    - INVALID_ARGUMENT: Triton refused the request's inputs or outputs (502).
    """
    status, message = str(exc.status() or ""), exc.message() or ""
    lowered = message.lower()
    if status == _DEADLINE_EXCEEDED or "Deadline Exceeded" in message:
        return InferenceTimeout(f"Triton did not answer within the deadline for model {model!r}")
    if status == _UNAVAILABLE:
        if "unknown model" in lowered:
            return ModelNotFound(f"Triton does not serve a model named {model!r}")
        return TritonUnavailable("the inference server (Triton) is not reachable")
    if status == _NOT_FOUND:
        if "shared memory region" in lowered:
            return InferenceFailed(f"Triton failed on model {model!r}: {message}")
        return ModelNotFound(f"Triton does not serve a model named {model!r}")
    if status == _INVALID_ARGUMENT:
        return InferenceFailed(f"Triton failed on model {model!r}: {message}")
    if "unknown model" in lowered or "not found" in lowered:
        return ModelNotFound(f"Triton does not serve a model named {model!r}")
    if "not ready" in lowered or "unavailable" in lowered:
        return ModelNotReady(f"model {model!r} is not ready in Triton")
    return InferenceFailed(f"Triton failed on model {model!r}: {message}")


@asynccontextmanager
async def translated_errors(model: str | None = None) -> AsyncIterator[None]:
    """Map tritonclient / gRPC failures onto :mod:`gateway.errors` (:func:`translate_error`)."""
    try:
        yield
    except InferenceServerException as exc:
        raise translate_error(exc, model) from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def orphaned_region_names(names: Iterable[str]) -> list[str]:
    """The ``medserve_<pid>_<n>`` names among ``names`` whose gateway process is dead."""
    orphaned = []
    for name in names:
        match = _REGION_NAME.match(name)
        if match and int(match["pid"]) != os.getpid() and not _pid_alive(int(match["pid"])):
            orphaned.append(name)
    return orphaned


def remove_orphaned_region_files(shm_dir: str | None = None) -> list[str]:
    """Unlink the region files (``/dev/shm/medserve_<pid>_<n>``, pixel data) of dead gateway
    processes; returns their names."""
    shm_dir = shm_dir or _SHM_DIR
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return []
    removed = []
    for name in orphaned_region_names(names):
        try:
            os.unlink(os.path.join(shm_dir, name))
            removed.append(name)
        except FileNotFoundError:  # another gateway starting at the same time got it first
            pass
    return removed


async def unregister_orphaned_regions(client: grpcaio.InferenceServerClient, timeout_s: float) -> list[str]:
    """Unregister from Triton the regions of dead gateway processes (Triton keeps them mapped
    until then); returns their names. Raises InferenceServerException when Triton fails."""
    status = await client.get_system_shared_memory_status(as_json=True, client_timeout=timeout_s)
    orphaned = orphaned_region_names(status.get("regions", {}))
    for name in orphaned:
        await client.unregister_system_shared_memory(name, client_timeout=timeout_s)
    return orphaned


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

    def read(self, shape: list[int], dtype: np.dtype, offset: int) -> np.ndarray:
        """A copy of the tensor Triton wrote at ``offset`` bytes: the region is lent again
        once the answer is read, so no view of it may leave."""
        return np.ndarray(shape, dtype, buffer=self.buffer, offset=offset).copy()

    def destroy(self) -> None:
        self.buffer.close()
        try:
            os.unlink(os.path.join(_SHM_DIR, self.name))
        except FileNotFoundError:
            pass


class SharedMemoryPool:
    """Regions by power-of-two size, registered once and reused; at most ``max_bytes`` in all.

    A region is lent for one inference and given back when Triton answered; after a failed or
    timed-out call it is retired instead, since Triton may still read it. Unregistering runs
    in the background, bounded by ``control_timeout_s``, so no request waits for it.
    """

    def __init__(self, client: grpcaio.InferenceServerClient, control_timeout_s: float, max_bytes: int = SHARED_MEMORY_MAX_BYTES) -> None:
        self._client = client
        self._control_timeout_s = control_timeout_s
        self._max_bytes = max_bytes
        self._free: dict[int, list[_Region]] = {}
        self._all: dict[str, _Region] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.available = True

    @property
    def registered_bytes(self) -> int:
        return sum(region.size for region in self._all.values())

    @property
    def region_names(self) -> list[str]:
        """Names of the regions registered with Triton now."""
        return list(self._all)

    async def acquire(self, nbytes: int, timeout_s: float) -> _Region | None:
        """A region of at least ``nbytes``, or None (pool full, or shared memory unusable).

        Raises InferenceServerException when Triton is unreachable or does not register a new
        region within ``timeout_s``: the request fails, shared memory stays on.
        """
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
            log.warning("no shared memory for a tensor; it goes over gRPC", extra={"reason": str(exc)})
            return None
        try:
            await self._client.register_system_shared_memory(region.name, region.key, size, client_timeout=timeout_s)
        except InferenceServerException as exc:
            if _unreachable(exc):
                self._unregister_in_background(region)  # Triton may have registered it before the deadline
                raise
            region.destroy()
            self.available = False
            log.warning("Triton cannot map the gateway's shared memory; tensors go over gRPC", extra={"reason": exc.message()})
            return None
        self._all[region.name] = region
        return region

    def release(self, region: _Region) -> None:
        """Lend ``region`` again: Triton answered the call that used it."""
        if region.name in self._all:
            self._free.setdefault(region.size, []).append(region)
        else:
            region.destroy()

    def retire(self, region: _Region) -> None:
        """Never lend ``region`` again (Triton may still read it): unlink it now, unregister it
        in the background (best effort: Triton may be gone)."""
        self._all.pop(region.name, None)
        self._unregister_in_background(region)

    def forget_all(self) -> None:
        """Triton restarted and knows none of the regions: retire the free ones; the ones lent
        right now are unlinked when they come back. New regions are registered on demand."""
        free = [region for regions in self._free.values() for region in regions]
        self._free.clear()
        self._all.clear()
        for region in free:
            self._unregister_in_background(region)

    def remove_orphans_in_background(self) -> None:
        """Start :meth:`remove_orphans` (when an event loop runs, as in the app's lifespan)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._spawn(self.remove_orphans())

    async def remove_orphans(self) -> None:
        """Unlink and unregister the regions that gateway processes which died left behind."""
        files = remove_orphaned_region_files()
        try:
            registrations = await unregister_orphaned_regions(self._client, self._control_timeout_s)
        except InferenceServerException as exc:
            registrations = []
            log.warning("could not list Triton's shared-memory regions", extra={"reason": exc.message()})
        if files or registrations:
            log.info(
                "removed the shared memory of dead gateway processes",
                extra={"files": len(files), "registrations": len(registrations)},
            )

    async def close(self) -> None:
        """Retire every region and wait (at most the control timeout) for the unregistrations."""
        for region in list(self._all.values()):
            self.retire(region)
        self._free.clear()
        pending = list(self._background)
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._control_timeout_s)
            for task in late:
                task.cancel()

    def _unregister_in_background(self, region: _Region) -> None:
        region.destroy()
        self._spawn(self._unregister(region.name))

    async def _unregister(self, name: str) -> None:
        try:
            await self._client.unregister_system_shared_memory(name, client_timeout=self._control_timeout_s)
        except Exception:
            log.debug("unregistering %s failed", name, exc_info=True)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


#: An output's place in a region: (offset, byte size).
OutputLayout = dict[str, tuple[int, int]]


def output_layout(metadata: dict[str, Any], outputs: list[str], batch: int) -> OutputLayout | None:
    """Where each of ``outputs`` goes in one shared-memory region, packed in order (offsets
    aligned to 64 bytes), from the model's metadata (``get_model_metadata(as_json=True)``: each
    output's ``datatype`` and ``shape``, -1 first for the batch axis) with ``batch`` items.

    None when a size is not known before Triton answers: another variable axis, a ``BYTES``
    output, or a name the metadata does not list; those outputs come back over gRPC.
    """
    described = {output["name"]: output for output in metadata.get("outputs", [])}
    layout, offset = {}, 0
    for name in outputs:
        output = described.get(name)
        if output is None or output.get("datatype") in (None, "BYTES"):
            return None
        shape = [int(axis) for axis in output.get("shape", [])]
        if shape[:1] == [-1]:
            shape[0] = batch
        if any(axis < 0 for axis in shape):
            return None
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(triton_to_np_dtype(output["datatype"])).itemsize
        layout[name] = (offset, nbytes)
        offset += -(-nbytes // _OUTPUT_ALIGNMENT) * _OUTPUT_ALIGNMENT
    return layout


def _is_loopback(url: str) -> bool:
    return url.rpartition(":")[0] in _LOOPBACK_HOSTS


def _lost_regions(exc: Exception) -> bool:
    """Triton answered that it does not know a region the request named: it restarted."""
    cause = exc.__cause__
    return isinstance(cause, InferenceServerException) and "shared memory region" in (cause.message() or "").lower()


def _outputs_did_not_fit(exc: Exception) -> bool:
    """Triton answered that an output is larger than its place in the region (the model was
    reloaded with larger outputs than its metadata said when it was read)."""
    cause = exc.__cause__
    return isinstance(cause, InferenceServerException) and "to hold the results" in (cause.message() or "")


def _read_output(result: grpcclient.InferResult, name: str, region: _Region, offset: int) -> np.ndarray:
    """Output ``name`` of an answer whose outputs Triton wrote into ``region``: its shape and
    datatype from the answer, its bytes copied out of the region at ``offset``."""
    output = result.get_output(name)
    return region.read(list(output.shape), np.dtype(triton_to_np_dtype(output.datatype)), offset)


class TritonClient:
    """The gateway's view of Triton: health, repository index, configs and inference.

    ``shared_memory``: send large inputs through system shared memory; None (default) uses it
    when ``url`` is a loopback address, i.e. Triton runs on this host. Constructed inside an
    event loop (the app's lifespan), it starts removing dead gateways' regions right away.
    """

    def __init__(
        self, url: str, timeout_s: float, probe_timeout_s: float, shared_memory: bool | None = None,
        shared_memory_max_bytes: int = SHARED_MEMORY_MAX_BYTES,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.probe_timeout_s = probe_timeout_s
        self._client = grpcaio.InferenceServerClient(url=url, channel_args=_CHANNEL_ARGS)
        use_shared_memory = (_is_loopback(url) if shared_memory is None else shared_memory) and shared_memory_max_bytes > 0
        self._shared_memory = SharedMemoryPool(self._client, probe_timeout_s, shared_memory_max_bytes) if use_shared_memory else None
        self._metadata: dict[str, dict[str, Any]] = {}  # model -> get_model_metadata, for output sizes
        if self._shared_memory is not None:
            self._shared_memory.remove_orphans_in_background()

    @property
    def shared_memory(self) -> SharedMemoryPool | None:
        return self._shared_memory

    async def close(self) -> None:
        if self._shared_memory is not None:
            await self._shared_memory.close()
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
        """Run one inference within ``timeout_s`` (shared-memory registration included);
        returns the named outputs and the model version that answered."""
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        try:
            return await self._infer(model, inputs, outputs, request_id, self._shared_memory, True, deadline)
        except (InferenceFailed, ModelNotFound) as exc:
            if self._shared_memory is None:
                raise
            if _lost_regions(exc):
                log.warning("Triton lost the gateway's shared-memory regions (it restarted); registering new ones")
                self._shared_memory.forget_all()
                return await self._infer(model, inputs, outputs, request_id, None, False, deadline)
            if _outputs_did_not_fit(exc):
                self._metadata.pop(model, None)
                return await self._infer(model, inputs, outputs, request_id, self._shared_memory, False, deadline)
            raise

    async def _output_metadata(self, model: str, timeout_s: float) -> dict[str, Any] | None:
        """The model's metadata (its outputs' datatypes and shapes), read once per model; None
        when Triton does not give it (the inference that follows says why)."""
        if model not in self._metadata:
            try:
                self._metadata[model] = await self._client.get_model_metadata(model, as_json=True, client_timeout=timeout_s)
            except InferenceServerException:
                return None
        return self._metadata[model]

    async def _infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        outputs: list[str],
        request_id: str,
        pool: SharedMemoryPool | None,
        shared_outputs: bool,
        deadline: float,
    ) -> tuple[dict[str, np.ndarray], str]:
        """One call. With a ``pool``, large inputs go through shared memory; with
        ``shared_outputs`` too, the outputs come back in one region when their sizes are
        known up front (:func:`output_layout`) and together reach ``SHARED_MEMORY_MIN_OUTPUT_BYTES``."""
        loop = asyncio.get_running_loop()

        def remaining_s() -> float:
            left = deadline - loop.time()
            if left <= 0:
                raise InferenceTimeout(f"Triton did not answer within the deadline for model {model!r}")
            return left

        infer_inputs, lent = [], []
        layout, output_region = None, None
        try:
            async with translated_errors(model):
                for name, array in inputs.items():
                    tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
                    region = None
                    if pool is not None and array.nbytes >= SHARED_MEMORY_MIN_BYTES and array.dtype != np.object_:
                        region = await pool.acquire(array.nbytes, remaining_s())
                    if region is not None:
                        lent.append(region)
                        region.write(array)
                        tensor.set_shared_memory(region.name, array.nbytes)
                    else:
                        tensor.set_data_from_numpy(array)
                    infer_inputs.append(tensor)
                requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
                if pool is not None and shared_outputs and pool.available and inputs:
                    metadata = await self._output_metadata(model, min(self.probe_timeout_s, remaining_s()))
                    first = next(iter(inputs.values()))
                    batch = first.shape[0] if first.ndim else 1
                    layout = output_layout(metadata, outputs, batch) if metadata is not None else None
                if layout:  # an empty layout: no outputs asked for
                    offset, nbytes = layout[outputs[-1]]
                    if offset + nbytes >= SHARED_MEMORY_MIN_OUTPUT_BYTES:
                        output_region = await pool.acquire(offset + nbytes, remaining_s())
                if output_region is not None:
                    assert layout is not None
                    lent.append(output_region)
                    for tensor, name in zip(requested, outputs):
                        tensor.set_shared_memory(output_region.name, layout[name][1], layout[name][0])
                result = await self._client.infer(
                    model, infer_inputs, outputs=requested, request_id=request_id, client_timeout=remaining_s()
                )
        except BaseException as exc:
            # Triton is done with the regions once it answered, even with an error; after a
            # timeout, a lost connection or a cancellation it may still read or write them.
            answered = isinstance(exc, (InferenceFailed, ModelNotFound, ModelNotReady))
            for region in lent:
                assert pool is not None
                pool.release(region) if answered else pool.retire(region)
            raise
        try:
            if output_region is None:
                answer = {name: result.as_numpy(name) for name in outputs}
            else:
                assert layout is not None
                answer = {name: _read_output(result, name, output_region, layout[name][0]) for name in outputs}
        finally:
            for region in lent:
                assert pool is not None
                pool.release(region)
        return answer, result.get_response().model_version
