"""The gateway's shared-memory path to a local Triton (the bench's 3D optimization): the
same answers as gRPC, a fallback where Triton cannot map the regions, recovery when Triton
forgot them, and nothing left behind in /dev/shm."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from gateway import triton as triton_module
from gateway.triton import TritonClient

MODEL = "ct_nodule_segmenter_3d"


def _volume() -> np.ndarray:
    return np.random.default_rng(0).random((1, 1, 32, 96, 96), dtype=np.float32)


def _left(names: list[str]) -> list[str]:
    return [name for name in names if os.path.exists(f"/dev/shm/{name}")]


def _run(coroutine):
    return asyncio.run(coroutine)


def test_shared_memory_gives_the_grpc_answer_and_cleans_up(triton) -> None:
    async def scenario() -> tuple[np.ndarray, np.ndarray, int, list[str]]:
        local, plain = TritonClient(triton.grpc_url, 30, 5), TritonClient(triton.grpc_url, 30, 5, shared_memory=False)
        try:
            ours, _ = await local.infer(MODEL, {"volume": _volume()}, ["labels"])
            again, _ = await local.infer(MODEL, {"volume": _volume()}, ["labels"])  # a reused region
            reference, _ = await plain.infer(MODEL, {"volume": _volume()}, ["labels"])
            assert local._shared_memory is not None
            registered, regions = local._shared_memory.registered_bytes, list(local._shared_memory._all)
            assert (again["labels"] == ours["labels"]).all()
        finally:
            await local.close()
            await plain.close()
        return ours["labels"], reference["labels"], registered, regions

    ours, reference, registered, regions = _run(scenario())

    assert (ours == reference).all()
    assert registered == 2 * 1024 * 1024 and len(regions) == 1  # 1.2 MB in one 2 MiB region
    assert _left(regions) == []


def test_unmappable_regions_fall_back_to_grpc(triton, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(triton_module, "_SHM_DIR", str(tmp_path))  # Triton looks in /dev/shm: not found there

    async def scenario():
        client = TritonClient(triton.grpc_url, 30, 5, shared_memory=True)
        try:
            first, _ = await client.infer(MODEL, {"volume": _volume()}, ["labels"])
            second, _ = await client.infer(MODEL, {"volume": _volume()}, ["labels"])
            assert client._shared_memory is not None
            return first["labels"], second["labels"], client._shared_memory.available
        finally:
            await client.close()

    first, second, available = _run(scenario())

    assert available is False
    assert (first == second).all()
    assert list(tmp_path.iterdir()) == []


async def _forget_every_region(client) -> None:
    """Unregister all of Triton's system shared-memory regions; Triton refuses while it still
    holds a region for a request it has just answered (seen on a loaded machine), so retry."""
    for attempt in range(50):
        try:
            await client.unregister_system_shared_memory()
            return
        except InferenceServerException:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)


def test_regions_forgotten_by_triton_are_registered_again(triton) -> None:
    async def scenario():
        client = TritonClient(triton.grpc_url, 30, 5)
        other = grpcaio.InferenceServerClient(triton.grpc_url)
        try:
            first, _ = await client.infer(MODEL, {"volume": _volume()}, ["labels"])
            await _forget_every_region(other)  # what a Triton restart amounts to
            second, _ = await client.infer(MODEL, {"volume": _volume()}, ["labels"])  # resent over gRPC
            third, _ = await client.infer(MODEL, {"volume": _volume()}, ["labels"])  # a new region
            status = await other.get_system_shared_memory_status(as_json=True)
            assert client._shared_memory is not None
            return first["labels"], second["labels"], third["labels"], status, list(client._shared_memory._all)
        finally:
            await client.close()
            await other.close()

    first, second, third, status, regions = _run(scenario())

    assert (first == second).all() and (first == third).all()
    assert len(regions) == 1 and regions[0] in status.get("regions", {})
    assert _left(regions) == []


@pytest.mark.parametrize(
    ("url", "local"),
    [("127.0.0.1:8001", True), ("localhost:8001", True), ("[::1]:8001", True), ("triton:8001", False), ("10.0.0.7:8001", False)],
)
def test_shared_memory_by_default_only_for_a_loopback_triton(url: str, local: bool) -> None:
    assert triton_module._is_loopback(url) is local
