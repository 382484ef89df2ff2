"""How many threads one preprocessing call may split its per-slice work over, and the split.

numpy's gathers and arithmetic and ``os.preadv`` release the GIL, so frames of one series
are resampled on several cores at once. (Elementwise passes over a whole volume, such as a
window, are bound by memory bandwidth: two threads made them no faster here.) The count is the cores this process may run on
(``os.sched_getaffinity``, which honours CPU pinning and container cpusets), at most
:data:`MAX_THREADS`: beyond that a series of a few hundred frames gains little and
concurrent requests would only contend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Upper bound on the threads of one call.
MAX_THREADS = 8


def worker_threads() -> int:
    """Threads one call may use: the cores available to this process, 1 to :data:`MAX_THREADS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cores))


def for_slabs(work: Callable[[slice], object], length: int, threads: int) -> None:
    """``work(slab)`` for contiguous slabs of ``range(length)`` that cover it, each on its own
    thread (at most ``threads``, at most ``length``); on the calling thread when that is one.
    The first error of a slab is raised."""
    threads = max(1, min(threads, length))
    if threads == 1:
        work(slice(0, length))
        return
    bounds = np.linspace(0, length, threads + 1).round().astype(int)
    with ThreadPoolExecutor(threads, thread_name_prefix="medserve-preprocess") as pool:
        list(pool.map(lambda k: work(slice(int(bounds[k]), int(bounds[k + 1]))), range(threads)))

