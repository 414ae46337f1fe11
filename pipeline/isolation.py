"""The one child-process runner: every solve runs here, whatever the front end.

A solve runs in a forked child with a cap on its memory growth (``RLIMIT_AS``, less the
parent's free heap the child may reuse without growing: see :func:`memory_limit`); its
progress events (each improved, exactly checked mask with its proven lower bound) come
back through a queue as they happen, and the child is killed when the deadline (plus
``GRACE_S``) has passed.  A solver crash, a memory blow-up or a z3 check that overruns
its timeout therefore never takes the caller down, and a killed solve still answers:
its best reported mask, certified again here, comes back as ``feasible`` with its
proven lower bound.  ``backend="portfolio"`` races every backend of the problem's kind
(the solver's registry) in sibling children; the first proven optimum wins.  On Linux a
child is killed by the kernel when the process that forked it dies (``PR_SET_PDEATHSIG``),
so no solver outlives its caller, and :func:`stop_early` (the server's drain) ends every
running solve at once with its best verified mask.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from smug.solver.backends import PORTFOLIO, PROBLEM_KINDS, kind_of, solver_for
from smug.solver.certificate import certify, certify_network
from smug.solver.solve import Solution

GRACE_S = 1.0  # past the solver's timeout before its child is killed
MEMORY_MB = 8192  # per child, on top of what the parent had mapped
POLL_S = 0.05
Progress = Callable[[dict], None]
_STOP = threading.Event()  # set by stop_early(): running solves end now with their best verified mask


def stop_early() -> None:
    """End every running solve of this process now (async-signal safe: the server's drain calls it
    from a signal handler); each answers with its best verified mask and proven lower bound."""
    _STOP.set()


def resume() -> None:
    """Let solves run to their timeout again (after :func:`stop_early`; a worker calls it per job)."""
    _STOP.clear()


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library of this Linux process (``None`` elsewhere, or when it cannot be loaded); loaded once."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent dies; elsewhere nothing changes."""
    try:
        _libc().prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except AttributeError:  # no C library, or no prctl
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _keep_freed_memory() -> None:
    """glibc: a short-lived solve child keeps what it frees for reuse (no trimming, blocks up to
    32 MiB from the heap) instead of mapping fresh zeroed pages for each numpy temporary.  A
    parent run with ``MALLOC_TRIM_THRESHOLD_`` set (Dask's nanny sets it on every worker)
    otherwise pays about 3x the page faults and 1.25x the solve time (``bench/farm.py``)."""
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
    """Bytes free inside this process's malloc arenas (glibc >= 2.33; 0 elsewhere).  A forked child
    reuses them without mapping anything, so ``RLIMIT_AS`` alone would not count them."""
    try:
        mallinfo2 = _libc().mallinfo2
    except AttributeError:
        return 0
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().fordblks)


def memory_limit(mapped: int, cap: int, free_heap: int) -> int:
    """The ``RLIMIT_AS`` that bounds what a child touches by ``max(cap, free_heap)`` bytes: the
    inherited free heap counts against the cap as if the child used all of it."""
    return mapped + max(0, cap - free_heap)


def _virtual_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(solver: Callable, problem, backend: str, timeout: float, memory_mb: int | None, out,
           parent: int = 0) -> None:
    """Entry point of a solve child: events and the result (or the exception) into ``out``.
    Solver banners (HiGHS prints one) go to stderr: the caller's stdout carries only its own output."""
    gc.freeze()  # the parent's objects: never traversed (nor copied on write) by this child's collections
    _keep_freed_memory()
    if parent:
        _die_with_parent(parent)
    sys.stdout.flush()
    os.dup2(2, 1)
    if memory_mb:
        import resource

        out.put((backend, "started", None))  # the queue's feeder thread and its stack exist before the cap

        limit = memory_limit(_virtual_bytes(), memory_mb * 2**20, free_heap_bytes())  # libraries are mapped already
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def progress(ev: dict) -> None:
        out.put((backend, "event", ev))

    try:
        out.put((backend, "result", solver(problem, backend=backend, timeout=timeout, progress=progress)))
    except MemoryError:
        out.put((backend, "error", "ran out of memory (the per-solve memory cap)"))
    except BaseException as exc:  # report and end quietly: the parent decides
        out.put((backend, "error", f"crashed: {type(exc).__name__}"))


@dataclass
class _Member:
    """One backend's child and what it reported."""

    backend: str
    process: mp.Process
    solution: Solution | None = None
    error: str | None = None
    best: dict = field(default_factory=dict)  # its last "improved" event

    def settled(self) -> bool:
        return self.solution is not None or self.error is not None


def solve_isolated(problem, backend: str, timeout: float, progress: Progress | None = None,
                   memory_mb: int | None = MEMORY_MB, grace: float = GRACE_S, solver: Callable | None = None) -> Solution:
    """The minimal mask of ``problem`` by ``backend`` (or the portfolio), solved in child processes;
    ``solver`` (default: the registry's entry point for the problem kind) is what the children run."""
    kind = kind_of(problem)
    solver = solver or solver_for(problem)
    members = [b for b in PROBLEM_KINDS[kind] if b != "auto"] if backend == PORTFOLIO else [backend]
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    t0 = time.perf_counter()
    race = {b: _Member(b, ctx.Process(target=_child, args=(solver, problem, b, timeout, memory_mb, out, os.getpid()),
                                      daemon=True))
            for b in members}
    for m in race.values():
        m.process.start()
    winner = None
    try:
        winner = _collect(race, out, t0 + timeout + grace, progress)
    finally:
        for m in race.values():
            if m.process.is_alive():
                m.process.kill()
        for m in race.values():
            m.process.join(timeout=1)
    elapsed = time.perf_counter() - t0
    sol = winner or _best_of(problem, race, backend)
    if backend == PORTFOLIO:
        sol = replace(sol, backend=f"portfolio:{sol.backend}")
    return replace(sol, timings={**sol.timings, "isolated_total": elapsed})


def _collect(race: dict[str, _Member], out, kill_at: float, progress: Progress | None) -> Solution | None:
    """Read the children's messages until one proves its answer, all settled, or ``kill_at``.
    A child seen dead is declared so only after one more empty read: its last message may
    still be in the pipe."""
    lower = 0
    dead: set[str] = set()
    while time.perf_counter() < kill_at and not all(m.settled() for m in race.values()) and not _STOP.is_set():
        try:
            backend, kind, payload = out.get(timeout=POLL_S)
        except queue_mod.Empty:
            for m in race.values():
                if m.backend in dead and not m.settled():
                    m.error = _death(m.process.exitcode)
                elif not m.settled() and not m.process.is_alive():
                    dead.add(m.backend)
            continue
        m = race[backend]
        if kind == "event" and payload.get("event") == "improved":
            m.best = payload
            lower = max(lower, int(payload.get("lower_bound", 0)))
            if progress is not None:  # a racing member may know a better bound
                progress({**payload, "lower_bound": lower, "backend": backend})
        elif kind == "event":
            if progress is not None:
                progress(payload)
        elif kind == "started":
            continue
        elif kind == "result":
            m.solution = payload
            if payload.status in ("optimal", "infeasible"):
                return payload
        else:
            m.error = payload
    for m in race.values():
        if not m.settled():
            m.error = "stopped early (the server is shutting down)" if _STOP.is_set() else "killed at the deadline"
    return None


def _death(exitcode: int) -> str:
    """Why a solve child ended without an answer (a kill at the deadline is reported as such by
    :func:`_collect`; running out of the memory cap inside Python reports itself)."""
    if exitcode == -6:
        return "the solve process aborted (signal 6: usually a native allocation refused by the memory cap)"
    if exitcode == -9:
        return "the solve process was killed by signal 9 (the system's out-of-memory killer or an operator)"
    if exitcode < 0:
        return f"the solve process was killed by signal {-exitcode}"
    return f"the solve process died (exit code {exitcode})"


def _best_of(problem, race: dict[str, _Member], backend: str) -> Solution:
    """No proven answer: the smallest verified mask any child returned or reported, with the
    largest proven lower bound; ``unknown`` when there is none."""
    lower = max([m.solution.lower_bound for m in race.values() if m.solution] +
                [int(m.best.get("lower_bound", 0)) for m in race.values()] + [0])
    candidates = [m.solution for m in race.values() if m.solution is not None and m.solution.mask is not None]
    check = certify if kind_of(problem) == "first-layer" else certify_network
    for m in race.values():
        if m.solution is None and m.best.get("mask") is not None:
            mask = np.asarray(m.best["mask"], dtype=bool)
            cert = check(problem, mask)
            if cert.valid:  # every reported mask passed the exact check in the child; checked again here
                candidates.append(Solution.feasible(
                    mask, lower, m.backend, f"{m.error}: best verified mask it reported, and the proven lower bound",
                    cert, components=0))
    if not candidates:
        why = "; ".join(f"{m.backend}: {m.error or m.solution.proof}" for m in race.values())
        return Solution.unknown(backend, f"no verified mask ({why})", lower_bound=lower)
    best = min(candidates, key=lambda s: s.objective)
    return replace(best, lower_bound=max(lower, best.lower_bound))
