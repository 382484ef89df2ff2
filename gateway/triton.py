"""Async gRPC access to Triton, with its errors translated in exactly one place.

One channel per gateway process (connection reuse); message-size limits lifted so that 3D
volumes fit; every call carries a deadline.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from .errors import InferenceFailed, InferenceTimeout, ModelNotFound, ModelNotReady, TritonUnavailable

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


class TritonClient:
    """The gateway's view of Triton: health, repository index, configs and inference."""

    def __init__(self, url: str, timeout_s: float, probe_timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.probe_timeout_s = probe_timeout_s
        self._client = grpcaio.InferenceServerClient(url=url, channel_args=_CHANNEL_ARGS)

    async def close(self) -> None:
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
        infer_inputs = []
        for name, array in inputs.items():
            tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            infer_inputs.append(tensor)
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        async with translated_errors(model):
            result = await self._client.infer(
                model, infer_inputs, outputs=requested, request_id=request_id, client_timeout=self.timeout_s
            )
        version = result.get_response().model_version
        return {name: result.as_numpy(name) for name in outputs}, version
