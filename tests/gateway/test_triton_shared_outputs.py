"""Model outputs through system shared memory (a Triton on this host): Triton writes the
answer into a region the request names, sized from the model's metadata before the call; the
answers equal the ones over gRPC, outlive the region's next use, and fall back to gRPC when
the pool is full or the metadata was stale; answers under 1 MiB stay on gRPC."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from gateway import triton as triton_module
from gateway.triton import TritonClient, output_layout

SEGMENTER_3D = "ct_nodule_segmenter_3d"  # volume [n, 1, 32, 96, 96] float32 -> labels [n, 32, 96, 96] uint8
CAM = "ct_nodule_classifier_cam"  # image [n, 1, 128, 128] -> probabilities [n, 2], activation_map [n, 4, 4]


def _volumes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 32, 96, 96), dtype=np.float32)


def _answers(triton, model: str, feeds: list[dict[str, np.ndarray]], outputs: list[str], prepare=None):
    """The answers of a loopback client (shared memory) and of a gRPC-only one to ``feeds``,
    and the names and bytes of the regions the loopback client registered."""

    async def scenario():
        local, plain = TritonClient(triton.grpc_url, 60, 10), TritonClient(triton.grpc_url, 60, 10, shared_memory=False)
        try:
            if prepare is not None:
                prepare(local)
            ours = [(await local.infer(model, feed, outputs))[0] for feed in feeds]
            reference = [(await plain.infer(model, feed, outputs))[0] for feed in feeds]
            assert local.shared_memory is not None
            return ours, reference, local.shared_memory.region_names, local.shared_memory.registered_bytes
        finally:
            await local.close()
            await plain.close()

    return asyncio.run(scenario())


def test_outputs_through_shared_memory_equal_grpc_and_outlive_the_region(triton) -> None:
    feeds = [{"volume": _volumes(4, seed)} for seed in (1, 2)]  # the second call reuses both regions

    ours, reference, regions, registered = _answers(triton, SEGMENTER_3D, feeds, ["labels"])

    for mine, theirs in zip(ours, reference):
        assert mine["labels"].shape == (4, 32, 96, 96) and mine["labels"].dtype == np.uint8
        np.testing.assert_array_equal(mine["labels"], theirs["labels"])
        assert mine["labels"].flags.owndata and mine["labels"].flags.writeable  # a copy, not the region
    assert not np.array_equal(ours[0]["labels"], ours[1]["labels"])  # the first answer survived the second call
    # the 4.7 MB input in an 8 MiB region, the 1.2 MB labels in a 2 MiB one
    assert len(regions) == 2 and registered == 10 * 1024 * 1024


def test_several_outputs_share_one_region_at_their_offsets(triton, monkeypatch) -> None:
    monkeypatch.setattr(triton_module, "SHARED_MEMORY_MIN_OUTPUT_BYTES", 1)  # these outputs are small
    images = np.random.default_rng(3).random((3, 1, 128, 128), dtype=np.float32)

    ours, reference, regions, registered = _answers(triton, CAM, [{"image": images}], ["probabilities", "activation_map"])

    assert ours[0]["probabilities"].shape == (3, 2) and ours[0]["activation_map"].shape == (3, 4, 4)
    for name in ("probabilities", "activation_map"):
        np.testing.assert_array_equal(ours[0][name], reference[0][name])
    # the 197 kB input over gRPC; one region for both outputs: 24 B at 0, 192 B at 64
    assert len(regions) == 1 and registered == 256


def test_outputs_over_grpc_when_the_pool_is_full(triton) -> None:
    def pool_for_the_input_only(client: TritonClient) -> None:
        assert client.shared_memory is not None
        client.shared_memory._max_bytes = 8 * 1024 * 1024

    feeds = [{"volume": _volumes(4, 4)}]
    ours, reference, regions, registered = _answers(triton, SEGMENTER_3D, feeds, ["labels"], pool_for_the_input_only)

    np.testing.assert_array_equal(ours[0]["labels"], reference[0]["labels"])
    assert len(regions) == 1 and registered == 8 * 1024 * 1024


def test_outputs_larger_than_the_metadata_said_are_sent_again_over_grpc(triton) -> None:
    """A model reloaded with larger outputs than the metadata the client read: Triton refuses
    to write past the output's place, the call is sent again with the outputs over gRPC, and
    the metadata is read anew."""

    clients = []

    def stale_metadata(client: TritonClient) -> None:
        client._metadata[SEGMENTER_3D] = {"outputs": [{"name": "labels", "datatype": "UINT8", "shape": ["-1", "30", "96", "96"]}]}
        clients.append(client)

    feeds = [{"volume": _volumes(4, 5)}, {"volume": _volumes(4, 6)}]
    ours, reference, regions, _ = _answers(triton, SEGMENTER_3D, feeds, ["labels"], stale_metadata)

    for mine, theirs in zip(ours, reference):
        np.testing.assert_array_equal(mine["labels"], theirs["labels"])
    # the input's 8 MiB region and a 2 MiB one for the 1.1 MB the stale metadata said, then for
    # the 1.2 MB labels
    assert len(regions) == 2
    assert clients[0]._metadata[SEGMENTER_3D]["outputs"][0]["shape"] == ["-1", "32", "96", "96"]  # read anew


def test_an_output_region_triton_forgot_is_registered_again(triton, monkeypatch) -> None:
    """A Triton that restarted knows none of the regions: a call whose only region is its
    outputs' is sent again over gRPC, and the next one registers a new region."""
    monkeypatch.setattr(triton_module, "SHARED_MEMORY_MIN_OUTPUT_BYTES", 1)
    feed = {"image": np.random.default_rng(7).random((2, 1, 128, 128), dtype=np.float32)}  # 131 kB: over gRPC
    outputs = ["probabilities", "activation_map"]

    async def scenario():
        client, other = TritonClient(triton.grpc_url, 60, 10), grpcaio.InferenceServerClient(triton.grpc_url)
        try:
            answers = [(await client.infer(CAM, feed, outputs))[0]]
            assert client.shared_memory is not None
            first_regions = client.shared_memory.region_names
            for attempt in range(50):  # Triton refuses while it still holds a region it just wrote
                try:
                    await other.unregister_system_shared_memory(first_regions[0])
                    break
                except InferenceServerException:
                    await asyncio.sleep(0.1)
            answers.append((await client.infer(CAM, feed, outputs))[0])  # sent again over gRPC
            answers.append((await client.infer(CAM, feed, outputs))[0])  # a new region
            status = await other.get_system_shared_memory_status(as_json=True)
            return answers, first_regions, client.shared_memory.region_names, status
        finally:
            await client.close()
            await other.close()

    answers, first_regions, regions, status = asyncio.run(scenario())

    for answer in answers[1:]:
        for name in outputs:
            np.testing.assert_array_equal(answer[name], answers[0][name])
    assert len(regions) == 1 and regions != first_regions and regions[0] in status.get("regions", {})


@pytest.mark.parametrize(
    ("metadata", "outputs", "batch", "layout"),
    [
        # packed in the order asked for, each start rounded up to 64 bytes
        (
            {"outputs": [{"name": "p", "datatype": "FP32", "shape": ["-1", "2"]}, {"name": "m", "datatype": "UINT8", "shape": ["-1", "4", "4"]}]},
            ["p", "m"],
            3,
            {"p": (0, 24), "m": (64, 48)},
        ),
        ({"outputs": [{"name": "labels", "datatype": "UINT8", "shape": ["2", "3"]}]}, ["labels"], 5, {"labels": (0, 6)}),  # no batch axis
        ({"outputs": [{"name": "labels", "datatype": "UINT8", "shape": ["-1", "-1", "96"]}]}, ["labels"], 1, None),  # a variable axis
        ({"outputs": [{"name": "names", "datatype": "BYTES", "shape": ["-1", "1"]}]}, ["names"], 1, None),  # sizes known only after
        ({"outputs": [{"name": "labels", "datatype": "UINT8", "shape": ["-1", "8"]}]}, ["other"], 1, None),  # not described
    ],
)
def test_output_layout(metadata: dict, outputs: list[str], batch: int, layout: dict | None) -> None:
    assert output_layout(metadata, outputs, batch) == layout


def test_the_pool_size_is_the_gateways_setting_and_zero_means_grpc_only(triton) -> None:
    """``MEDSERVE_SHARED_MEMORY_MAX_MB`` reaches the pool; 0 keeps every tensor on gRPC."""
    async def clients() -> tuple[object, int]:
        off = TritonClient(triton.grpc_url, 60, 10, shared_memory_max_bytes=0)
        small = TritonClient(triton.grpc_url, 60, 10, shared_memory_max_bytes=8 * 1024 * 1024)
        try:
            assert small.shared_memory is not None
            return off.shared_memory, small.shared_memory._max_bytes
        finally:
            await off.close()
            await small.close()

    pool, max_bytes = asyncio.run(clients())
    assert pool is None and max_bytes == 8 * 1024 * 1024
