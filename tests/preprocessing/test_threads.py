"""Streaming resampling split over threads: the volume is the one-thread volume bit for bit,
whatever the number of threads and wherever the frames are read from (Datasets, bytes,
files); compressed frames are decoded on one thread."""

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
from preprocessing.threads import MAX_THREADS, worker_threads


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
    calls: list[object] = []
    monkeypatch.setattr(volume, "ThreadPoolExecutor", lambda *a, **k: calls.append(a))
    np.testing.assert_array_equal(volume.load_resampled(plan.frames, *taps), one)
    assert calls == []
