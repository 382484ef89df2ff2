"""Work split over threads: the streaming resampler's volume is the one-thread one bit for
bit, whatever the number of threads and wherever the frames are read from (Datasets, bytes,
files); compressed frames are decoded on one thread; slabs cover their range once and a
slab's error reaches the caller."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from pydicom.uid import RLELossless

import preprocessing.volume as volume
from devtools import testdata
from preprocessing import plan_series
from preprocessing.resample import position_taps, spacing_taps
from preprocessing.threads import MAX_THREADS, for_slabs, worker_threads


def test_threads_are_the_cores_this_process_may_use_within_the_bound() -> None:
    assert 1 <= worker_threads() <= min(MAX_THREADS, len(os.sched_getaffinity(0)))


def _as(datasets, kind: str, tmp_path):
    if kind == "datasets":
        return datasets
    encoded = []
    for k, ds in enumerate(datasets):
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        encoded.append(buffer.getvalue())
    if kind == "bytes":
        return encoded
    paths = [tmp_path / f"{k}.dcm" for k in range(len(encoded))]
    for path, data in zip(paths, encoded):
        path.write_bytes(data)
    return paths


@pytest.mark.parametrize("kind", ["datasets", "bytes", "files"])
@pytest.mark.parametrize("threads", [2, 3, 7, 40])
def test_any_number_of_threads_makes_the_one_thread_volume(rng, monkeypatch, tmp_path, kind, threads) -> None:
    hu = np.rint(rng.uniform(-1000, 2000, (23, 30, 28))).astype(np.float32)
    datasets = testdata.ct_series(hu, pixel_spacing_mm=(0.9, 1.0), distances_mm=np.arange(23) * 1.25)
    plan = plan_series(_as(datasets, kind, tmp_path))
    taps = [
        position_taps(plan.slice_positions_mm, plan.spacing_mm[0], 1.5),  # 19 output slices from 23
        spacing_taps(30, 0.9, 1.1),
        spacing_taps(28, 1.0, 0.7, reverse=True),
    ]
    monkeypatch.setattr(volume, "worker_threads", lambda: 1)
    one = volume.load_resampled(plan.frames, *taps)
    monkeypatch.setattr(volume, "worker_threads", lambda: threads)
    np.testing.assert_array_equal(volume.load_resampled(plan.frames, *taps), one)


def test_compressed_frames_are_read_on_one_thread(rng, monkeypatch) -> None:
    hu = np.rint(rng.uniform(-1000, 2000, (6, 16, 16))).astype(np.float32)
    datasets = testdata.ct_series(hu, pixel_spacing_mm=(1.0, 1.0), distances_mm=np.arange(6) * 2.0, transfer_syntax=RLELossless)
    plan = plan_series(datasets)
    taps = [position_taps(plan.slice_positions_mm, 2.0, 1.0), spacing_taps(16, 1.0, 1.0), spacing_taps(16, 1.0, 1.0)]
    monkeypatch.setattr(volume, "worker_threads", lambda: 1)
    one = volume.load_resampled(plan.frames, *taps)
    monkeypatch.setattr(volume, "worker_threads", lambda: 4)
    asked: list[int] = []

    def recorded(work, length, threads):
        asked.append(threads)
        return for_slabs(work, length, threads)

    monkeypatch.setattr(volume, "for_slabs", recorded)
    np.testing.assert_array_equal(volume.load_resampled(plan.frames, *taps), one)
    assert asked == [1]


@pytest.mark.parametrize("threads", [1, 2, 5, 64])
def test_slabs_cover_the_range_once(threads) -> None:
    seen: list[int] = []
    for_slabs(lambda slab: seen.extend(range(slab.start, slab.stop)), 37, threads)
    assert sorted(seen) == list(range(37))


def test_an_error_in_a_slab_is_raised() -> None:
    def work(slab: slice) -> None:
        if slab.start > 0:
            raise ValueError("slab")

    with pytest.raises(ValueError, match="slab"):
        for_slabs(work, 10, 3)
