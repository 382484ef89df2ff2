"""The decoder pool: compressed pixel data decoded in worker processes that may crash, hang,
run out of memory or be killed, while the calling process keeps running and the next call
is served by a fresh worker."""

from __future__ import annotations

import functools
import io
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate

from preprocessing import InvalidDicom, decode_frame, open_instance
from preprocessing.decoder_pool import DecoderBusy, DecoderPool, configure_decoder_pool, decoder_pool


def _saved(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _relabelled(real_file, name: str, **changes) -> bytes:
    ds = real_file("pydicom", name).dataset()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return _saved(ds)


@functools.lru_cache(maxsize=1)
def _huge_blank_jpeg2000() -> bytes:
    """A real 8192x8192 16-bit JPEG 2000 CT frame of zeros: 250 bytes of codestream that take
    OpenJPEG over a second and ~400 MB (decoded values plus its working buffers) to decode."""
    import openjpeg

    ds = pydicom.dcmread(io.BytesIO(_read_693()))
    codestream = openjpeg.encode(np.zeros((8192, 8192), np.uint16), use_mct=False)
    ds.Rows = ds.Columns = 8192
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = encapsulate([codestream])
    return _saved(ds)


def _read_693() -> bytes:
    from devtools.testdata import pydicom_test_file

    return pydicom_test_file("693_J2KI.dcm").read_bytes()


def _resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def pool_with():
    """``pool_with(**config)``: the process-wide pool reconfigured for one test (defaults after)."""

    def configure(**changes) -> DecoderPool:
        configure_decoder_pool(**changes)
        return decoder_pool()

    yield configure
    configure_decoder_pool(workers=2, memory_limit_bytes=1 << 30, deadline_s=10.0, tasks_per_worker=200, wait_s=30.0)


def _good_frame_decodes(real_file) -> None:
    expected = real_file("pydicom", "693_J2KI.dcm").dataset().pixel_array
    np.testing.assert_array_equal(decode_frame(open_instance(real_file("pydicom", "693_J2KI.dcm").data)), expected)


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_a_codec_that_aborts_costs_one_call_and_its_worker(real_file, pool_with, photometric):
    """gdcm asserts (SIGABRT) on 693_J2KI relabelled as colour: in-process, that ends the server."""
    pool = pool_with(workers=1)
    pool.start()
    (before,) = pool.worker_pids()
    crashing = open_instance(_relabelled(real_file, "693_J2KI.dcm", PhotometricInterpretation=photometric))
    with pytest.raises(InvalidDicom, match=r"could not be decoded: the decoder process ended"):
        decode_frame(crashing)
    _good_frame_decodes(real_file)
    assert pool.worker_pids() != [before]


def test_a_worker_killed_mid_task_costs_that_call_only(real_file, pool_with):
    pool = pool_with(workers=1)
    pool.start()
    (pid,) = pool.worker_pids()
    slow = open_instance(_huge_blank_jpeg2000())
    with ThreadPoolExecutor(1) as executor:
        call = executor.submit(decode_frame, slow)
        while _resident_bytes(pid) < 200 << 20:  # the worker is decoding: its buffers are allocated
            threading.Event().wait(0.01)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(InvalidDicom, match=r"decoder process ended while decoding"):
            call.result()
    _good_frame_decodes(real_file)


def test_a_decode_past_the_deadline_is_stopped(real_file, pool_with):
    pool_with(workers=1, deadline_s=0.2)
    with pytest.raises(InvalidDicom, match=r"could not be decoded within the decoder's deadline of 0\.2 s"):
        decode_frame(open_instance(_huge_blank_jpeg2000()))
    _good_frame_decodes(real_file)


def test_a_decode_past_the_memory_limit_is_stopped(real_file, pool_with):
    pool_with(workers=1, memory_limit_bytes=320 << 20)  # ~200 MiB of libraries leave ~120 for decoding
    with pytest.raises(InvalidDicom, match=r"could not be decoded within the decoder's memory limit"):
        decode_frame(open_instance(_huge_blank_jpeg2000()))
    _good_frame_decodes(real_file)


def test_workers_are_recycled_after_their_number_of_tasks(real_file, pool_with):
    pool = pool_with(workers=1, tasks_per_worker=3)
    pool.start()
    first = pool.worker_pids()
    for _ in range(2):
        _good_frame_decodes(real_file)
    assert pool.worker_pids() == first
    _good_frame_decodes(real_file)
    assert pool.worker_pids() == []  # retired after its third task
    _good_frame_decodes(real_file)
    assert len(pool.worker_pids()) == 1 and pool.worker_pids() != first


def test_calls_from_many_threads_share_the_workers(real_file, pool_with):
    pool = pool_with(workers=2)
    names = ["693_J2KI.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"]
    expected = {name: real_file("pydicom", name).dataset().pixel_array for name in names}
    data = {name: real_file("pydicom", name).data for name in names}

    def decode(name: str) -> bool:
        return bool(np.array_equal(decode_frame(open_instance(data[name])), expected[name]))

    with ThreadPoolExecutor(8) as executor:
        results = list(executor.map(decode, names * 10))
    assert all(results)
    assert len(pool.worker_pids()) <= 2


def test_a_call_waits_a_bounded_time_for_a_busy_pool(real_file, pool_with):
    pool = pool_with(workers=1, wait_s=0.1)
    slow = open_instance(_huge_blank_jpeg2000())
    with ThreadPoolExecutor(1) as executor:
        call = executor.submit(decode_frame, slow)
        while pool.calls_in_flight() == 0:
            threading.Event().wait(0.01)
        with pytest.raises(DecoderBusy, match=r"busy for 0\.1 s"):
            decode_frame(open_instance(real_file("pydicom", "693_J2KI.dcm").data))
        assert call.result().shape == (8192, 8192)


def test_a_multiframe_object_is_sent_once_per_batch(real_file, pool_with):
    """30 JPEG frames of 240x320x3 decode in one round trip, equal to pydicom frame by frame."""
    pool = pool_with(workers=1, tasks_per_worker=2)
    image = real_file("pydicom", "examples_ybr_color.dcm")
    instance = open_instance(image.data)
    reference = image.dataset().pixel_array
    for index in range(30):
        np.testing.assert_array_equal(decode_frame(instance, index), reference[index])
    assert len(pool.worker_pids()) == 1  # one task of two: the worker is still there


def test_closing_leaves_no_process_behind(real_file):
    pool = DecoderPool()
    pool.start()
    pids = pool.worker_pids()
    zygote = pool._zygote
    assert len(pids) == 2 and zygote is not None
    pool.close()
    assert zygote.poll() is not None
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert pool.worker_pids() == []
