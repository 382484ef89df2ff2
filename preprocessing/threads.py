"""How many threads one preprocessing call may split its per-slice work over.

numpy's gathers and arithmetic and ``os.preadv`` release the GIL, so frames of one series
are resampled on several cores at once. The count is the cores this process may run on
(``os.sched_getaffinity``, which honours CPU pinning and container cpusets), at most
:data:`MAX_THREADS`: beyond that a series of a few hundred frames gains little and
concurrent requests would only contend.
"""

from __future__ import annotations

import os

#: Upper bound on the threads of one call.
MAX_THREADS = 8


def worker_threads() -> int:
    """Threads one call may use: the cores available to this process, 1 to :data:`MAX_THREADS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cores))
