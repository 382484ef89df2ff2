"""One batched-inference helper: split by max_batch_size, concurrent calls, rows in order."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from gateway.tasks.batching import infer_in_batches


class _Triton:
    """Answers each call after a delay that makes later batches finish first."""

    def __init__(self) -> None:
        self.calls: list[dict[str, np.ndarray]] = []
        self.in_flight = self.peak = 0

    async def infer(self, model, inputs, outputs, request_id=""):
        self.calls.append(inputs)
        number = len(self.calls)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01 / number)
        self.in_flight -= 1
        total = sum(batch.reshape(len(batch), -1).sum(axis=1) for batch in inputs.values())
        return {"sum": total, "twice": 2 * total}, f"v{number}"


def _context(max_batch_size: int) -> SimpleNamespace:
    card = SimpleNamespace(name="m", max_batch_size=max_batch_size)
    return SimpleNamespace(card=card, triton=_Triton(), request_id="r")


@pytest.mark.parametrize(("max_batch_size", "calls"), [(4, 3), (10, 1), (0, 10)])
def test_split_sent_together_and_joined_in_order(max_batch_size, calls) -> None:
    context = _context(max_batch_size)
    a = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    b = np.ones((10, 2), dtype=np.float32)

    answer = asyncio.run(infer_in_batches(context, {"a": a, "b": b}, ["sum", "twice"]))

    expected = a.sum(axis=1) + 2
    np.testing.assert_array_equal(answer.outputs["sum"], expected)
    np.testing.assert_array_equal(answer.outputs["twice"], 2 * expected)
    assert answer.calls == len(context.triton.calls) == calls
    assert answer.model_version == "v1"
    assert context.triton.peak == calls  # all in flight at once
    assert all(len(call["a"]) == len(call["b"]) <= max(max_batch_size, 1) for call in context.triton.calls)
