"""The operating system's side of a solve child: the C library calls, nothing about solving.

:func:`die_with_parent` (``prctl(PR_SET_PDEATHSIG)``: the kernel kills the child when the
thread that forked it dies), :func:`keep_freed_memory` (glibc's ``mallopt``: reuse freed
heap instead of fresh zeroed pages), :func:`free_heap_bytes` (``mallinfo2``) and
:func:`memory_limit` (the ``RLIMIT_AS`` of one solve), :func:`trim_heap` (``malloc_trim``
between jobs).  Off Linux or off glibc each does nothing (or reports 0).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys

TRIM_ABOVE = 64 << 20  # a host gives its free heap back to the system past this after a job


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library of this Linux process (``None`` elsewhere, or when it cannot be loaded); loaded once."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent (thread) dies; elsewhere nothing changes."""
    try:
        _libc().prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except AttributeError:  # no C library, or no prctl
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def keep_freed_memory() -> None:
    """glibc: a host keeps what it frees for reuse (no trimming, blocks up to 32 MiB from the
    heap) instead of mapping fresh zeroed pages for each numpy temporary.  A parent run with
    ``MALLOC_TRIM_THRESHOLD_`` set (Dask's nanny sets it on every worker) otherwise pays
    about 3x the page faults and 1.25x the solve time (``bench/farm.py``)."""
    try:
        libc = _libc()
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD (glibc's largest dynamic value)
    except AttributeError:  # no C library, or not glibc
        return


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (all ``size_t``)."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def free_heap_bytes() -> int:
    """Bytes free inside this process's malloc arenas (glibc >= 2.33; 0 elsewhere).  A solve
    reuses them without mapping anything, so ``RLIMIT_AS`` alone would not count them."""
    try:
        mallinfo2 = _libc().mallinfo2
    except AttributeError:
        return 0
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().fordblks)


def memory_limit(mapped: int, cap: int, free_heap: int) -> int:
    """The ``RLIMIT_AS`` that bounds what a solve touches by ``max(cap, free_heap)`` bytes: the
    free heap counts against the cap as if the solve used all of it."""
    return mapped + max(0, cap - free_heap)


def trim_heap() -> None:
    """Give a big free heap back to the system between jobs (an idle host keeps little)."""
    if free_heap_bytes() > TRIM_ABOVE:
        try:
            _libc().malloc_trim(0)
        except AttributeError:
            pass
