"""CPU accounting and the machine a run ran on (Linux ``/proc``).

Each server runs in a process group of its own, so its CPU is the sum over that group; what
the machine spent beyond our groups and the load generator is *other*, a gauge of the noise
a measurement suffered. The description (CPU, memory, versions, load) goes into every result,
so that figures are never compared across machines unknowingly.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs ran anything since boot (/proc/stat: user, nice, system, irq,
    softirq; not idle, iowait, steal, nor guest, which user already counts)."""
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS


def cpu_counters(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of this process (``client``), of each named list of process groups,
    and of the whole machine."""
    times = os.times()
    return {
        "client": times.user + times.system,
        **{name: sum(group_cpu_seconds(pgid) for pgid in pgids) for name, pgids in groups.items()},
        "machine": machine_busy_seconds(),
    }


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per answered request of each process group, the load generator
    (``client``), and the rest of the machine (``other``: anything not ours)."""
    delta = {key: after[key] - before[key] for key in after}
    delta["other"] = delta["machine"] - sum(v for k, v in delta.items() if k != "machine")
    return {key: round(value / max(requests, 1) * 1000, 3) for key, value in delta.items()}


def other_cpu_share(cells: Sequence[Any]) -> float | None:
    """Mean number of CPUs that processes other than ours used during the measurements
    (``cells``: measured cells with ``load`` and ``stages``)."""
    seconds = sum(c.stages.get("cpu_ms_per_request", {}).get("other", 0.0) * c.load["requests"] / 1000 for c in cells)
    wall = sum(c.load["window_s"] + c.load.get("drain_s", 0.0) for c in cells)
    return round(seconds / wall, 3) if wall > 0 else None


def wait_until_quiet(max_wait_s: float, load_below: float = 1.5, log: Callable[[str], None] = print) -> float:
    """Wait (at most ``max_wait_s``) until the 1-minute load average is below ``load_below``;
    returns the load average when done waiting."""
    deadline = time.monotonic() + max_wait_s
    load = os.getloadavg()[0]
    if load >= load_below and max_wait_s > 0:
        log(f"load average {load:.2f}: waiting up to {max_wait_s:.0f}s for it to drop below {load_below}")
    while load >= load_below and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def machine_description() -> dict[str, Any]:
    """CPU model, logical CPUs, memory (GiB), platform, Python, the load average at start and
    the versions of the packages that shape the figures."""
    import importlib.metadata as md

    def version(package: str) -> str | None:
        try:
            return md.version(package)
        except md.PackageNotFoundError:
            return None

    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gib = None
    try:
        kib = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        memory_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        pass
    return {
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": {
            p: version(p)
            for p in ("torch", "monai", "onnxruntime", "nvidia-pytriton", "tritonclient", "fastapi", "uvicorn", "numpy", "pydicom", "aiohttp")
        },
    }
