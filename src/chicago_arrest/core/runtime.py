"""CPU budget, thread pinning, and handing freed memory back to the system.

Oversubscription is the classic failure on small machines and in containers: on 2 cores XGBoost with more
threads than cores trained 6x slower and predicted single rows 80x slower. Everything that can run threads
takes its count from :func:`available_cpus`, which honours cgroup CPU limits (containers, KFP steps, KServe
pods) and CPU affinity.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Idle OpenMP threads must sleep, not spin: with the default policy XGBoost trained 4.5x slower with 2 threads
#: than with 1 on a 2-vCPU machine; with PASSIVE, 2 threads are 1.5x faster than 1 (docs/benchmarks.md). Only
#: effective when set before the OpenMP runtime loads (entry points, the image, the Makefile).
OMP_WAIT_POLICY = "PASSIVE"


def available_cpus() -> int:
    """Return the CPUs this process may really use: min(affinity, cgroup quota), at least 1.

    ``ARREST_CPUS`` overrides the detection.
    """
    override = os.environ.get("ARREST_CPUS")
    if override:
        return max(1, int(override))
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        count = min(count, max(1, math.floor(quota)))
    return max(1, count)


def training_cpus() -> int:
    """Threads of one training task: ``ARREST_TRAIN_CPUS`` when set, else :func:`available_cpus`.

    A local run starts its train tasks side by side and sets ``ARREST_TRAIN_CPUS`` for them
    (:func:`chicago_arrest.pipelines.run.run_local`); the other steps run one at a time and use every core.
    """
    override = os.environ.get("ARREST_TRAIN_CPUS")
    return max(1, int(override)) if override else available_cpus()


def _cgroup_quota() -> float | None:
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1q, v1p = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if v1q.is_file() and v1p.is_file():
            quota_us = int(v1q.read_text())
            return None if quota_us <= 0 else quota_us / int(v1p.read_text())
    except (OSError, ValueError):
        return None
    return None


def pin_thread_env(n: int) -> None:
    """Set the OpenMP/BLAS thread variables for child processes and not-yet-loaded libraries."""
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)


def release_memory(*, collect: bool = False) -> None:
    """Hand memory that was freed back to the system: Arrow's pool and the C heap keep it otherwise.

    After a Parquet read (Arrow's mimalloc pool) and after the raw features of two years (numpy's temporaries on
    the C heap), each kept ~85 MB that nothing in the process used again, and numpy cannot reuse Arrow's pool:
    with it the largest train task of a two-year run went from 1,053 to 902-1,012 MB (docs/benchmarks.md, "The full
    year"). About 10 ms; call it between the phases of a step, not in a loop.

    Args:
        collect: First run Python's cycle collector, so that arrays held only by reference cycles (fitted
            estimators) go now; ~170 ms with MLflow and KFP imported, so only where a step's peak follows.
    """
    import pyarrow as pa

    if collect:
        import gc

        gc.collect()
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """The C library's ``malloc_trim`` (glibc), or ``None`` (another C library, or not Linux)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not name.startswith("libc.so"):
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (AttributeError, OSError):
        return None


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far, in seconds: the one counter of costs."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
