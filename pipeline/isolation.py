"""The one child-process runner: every solve runs here, whatever the front end.

A solve runs in a child process (a solve host, :mod:`smug.pipeline.solve_host`: forked
once, then kept for the next solve) with a cap on its memory growth (``RLIMIT_AS``, less
the free heap it may reuse without growing: see
:func:`~smug.pipeline.solve_host.memory_limit`); its progress events (each improved,
exactly checked mask with its proven lower bound) come back through a pipe as they
happen, and the child is killed when the deadline (plus ``GRACE_S``) has passed.  A
solver crash, a memory blow-up or a z3 check that overruns its timeout therefore never
takes the caller down, and a killed solve still answers: its best reported mask,
certified again here, comes back as ``feasible`` with its proven lower bound.
``backend="portfolio"`` races every backend of the problem's kind (the solver's
registry) in sibling children; the first proven optimum wins.  On Linux a child is
killed by the kernel when the process that forked it dies (``PR_SET_PDEATHSIG``), so no
solver outlives its caller, and :func:`stop_early` (the server's drain) ends every
running solve at once with its best verified mask.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from typing import Callable

import numpy as np

from smug.pipeline import solve_host
from smug.solver.backends import PORTFOLIO, PROBLEM_KINDS, kind_of
from smug.solver.entry import solver_for
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


@dataclass
class _Member:
    """One backend's host and what it reported."""

    backend: str
    host: solve_host.Host
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
    t0 = time.perf_counter()
    race: dict[str, _Member] = {}
    winner = None
    try:
        for b in members:
            race[b] = _Member(b, solve_host.start(solver, problem, b, timeout, memory_mb))
        winner = _collect(race, t0 + timeout + grace, progress)
    finally:
        for m in race.values():  # a host that answered takes the next solve; the others end now
            solve_host.finish(m.host, reusable=m.solution is not None)
    elapsed = time.perf_counter() - t0
    sol = winner or _best_of(problem, race, backend)
    if backend == PORTFOLIO:
        sol = replace(sol, backend=f"portfolio:{sol.backend}")
    return replace(sol, timings={**sol.timings, "isolated_total": elapsed})


def _collect(race: dict[str, _Member], kill_at: float, progress: Progress | None) -> Solution | None:
    """Read the hosts' messages until one proves its answer, all settled, or ``kill_at``.
    A host that ends without an answer is seen as its pipe's end, after its last message."""
    lower = 0
    while (now := time.perf_counter()) < kill_at and not all(m.settled() for m in race.values()) \
            and not _STOP.is_set():
        open_ = {m.host.conn: m for m in race.values() if not m.settled()}
        for conn in wait(list(open_), timeout=min(POLL_S, kill_at - now)):
            m = open_[conn]
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                m.host.process.join(timeout=1)
                m.error = _death(m.host.process.exitcode)
                continue
            if kind == "event" and payload.get("event") == "improved":
                m.best = payload
                lower = max(lower, int(payload.get("lower_bound", 0)))
                if progress is not None:  # a racing member may know a better bound
                    progress({**payload, "lower_bound": lower, "backend": m.backend})
            elif kind == "event":
                if progress is not None:
                    progress(payload)
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


def _death(exitcode: int | None) -> str:
    """Why a solve child ended without an answer (a kill at the deadline is reported as such by
    :func:`_collect`; running out of the memory cap inside Python reports itself)."""
    if exitcode is None:
        return "the solve process closed its pipe without an answer"
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
