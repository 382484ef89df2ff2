"""tritonclient failures map onto gateway errors by gRPC status code first (codes and
messages as a real Triton 2.51 answers them)."""

from __future__ import annotations

import asyncio

import pytest
from tritonclient.utils import InferenceServerException

from gateway.errors import InferenceFailed, InferenceTimeout, ModelNotFound, ModelNotReady, TritonUnavailable
from gateway.triton import translate_error, translated_errors


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'nope' is not found", ModelNotFound),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'm' version 7 is not found", ModelNotFound),
        ("StatusCode.NOT_FOUND", "Unable to find shared memory region: 'medserve_1_0'", InferenceFailed),
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses; last error: UNKNOWN: Connection refused", TritonUnavailable),
        ("StatusCode.UNAVAILABLE", "Request for unknown model: 'm' has no available versions", ModelNotFound),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", InferenceTimeout),
        ("StatusCode.INVALID_ARGUMENT", "unexpected inference input 'x' for model 'm'", InferenceFailed),
        ("StatusCode.INVALID_ARGUMENT", "output 'y' not found", InferenceFailed),  # the code decides, not the text
        ("StatusCode.INTERNAL", "model 'm' is not ready", ModelNotReady),
        ("StatusCode.INTERNAL", "onnxruntime failed", InferenceFailed),
        (None, "Deadline Exceeded", InferenceTimeout),
    ],
)
def test_by_status_code_then_message(status, message, expected) -> None:
    assert type(translate_error(InferenceServerException(message, status=status), "m")) is expected


def test_the_context_manager_chains_the_cause() -> None:
    async def fail() -> None:
        async with translated_errors("m"):
            raise InferenceServerException("Unable to find shared memory region: 'r'", status="StatusCode.NOT_FOUND")

    with pytest.raises(InferenceFailed) as raised:
        asyncio.run(fail())
    assert isinstance(raised.value.__cause__, InferenceServerException)
