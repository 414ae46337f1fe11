"""The one child-process runner: every solve runs here, whatever the front end.

A solve runs in a child process (a solve host, :mod:`smug.isolation.host`: forked
once, then kept for the next solve) with a cap on its memory growth (``RLIMIT_AS``, less
the free heap it may reuse without growing: see
:func:`~smug.isolation.limits.memory_limit`); its progress events (each improved,
exactly checked mask with its proven lower bound, :class:`~smug.events.Improved`) come
back through a pipe as they happen, and the child is killed when the deadline (plus
``GRACE_S``) has passed.  A solver crash, a memory blow-up or a z3 check that overruns
its timeout therefore never takes the caller down, and a killed solve still answers: its
best reported mask, certified again here, comes back as ``feasible`` with its proven
lower bound.  That certificate is made while the child still works (:class:`_Certifier`,
a thread that checks each newly reported mask by exact arithmetic), so a solve that is
killed or stopped answers at once instead of after an exact check of its best mask
(seconds for a large first layer on a loaded machine).
``backend="portfolio"`` races every backend of the problem's kind (the solver's
registry) in sibling children; the first proven optimum wins.  On Linux a child is
killed by the kernel when the process that forked it dies (``PR_SET_PDEATHSIG``), so no
solver outlives its caller, and :func:`stop_early` (the server's drain) ends every
running solve at once with its best verified mask.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from typing import Callable

import numpy as np

from smug.events import Improved, Progress
from smug.isolation import host as solve_host
from smug.solver.backends import PORTFOLIO, PROBLEM_KINDS, kind_of
from smug.solver.entry import solver_for
from smug.solver.certificate import Certificate, certify, certify_network
from smug.solver.solve import Solution

GRACE_S = 1.0  # past the solver's timeout before its child is killed
MEMORY_MB = 8192  # per child, on top of what the parent had mapped
POLL_S = 0.05
CERTIFY_AFTER_S = 0.5  # into a solve, the runner starts checking its reported masks (see _Certifier)
_STOP = threading.Event()  # set by stop_early(): running solves end now with their best verified mask


def stop_early() -> None:
    """End every running solve of this process now (async-signal safe: the server's drain calls it
    from a signal handler); each answers with its best verified mask and proven lower bound."""
    _STOP.set()


def resume() -> None:
    """Let solves run to their timeout again (after :func:`stop_early`; a worker calls it per job)."""
    _STOP.clear()


class _Certifier:
    """A thread that checks each backend's newest reported mask by exact arithmetic while the solve
    goes on (one check at a time; a mask reported during a check replaces any still waiting), so a
    stopped or killed solve has its best mask's certificate at hand.  It starts checking
    :data:`CERTIFY_AFTER_S` into the solve: a solve that proves its answer sooner costs no check."""

    def __init__(self, problem, start: float):
        self.check = certify if kind_of(problem) == "first-layer" else certify_network
        self.problem, self.start = problem, start + CERTIFY_AFTER_S
        self.cond = threading.Condition()
        self.waiting: dict[str, np.ndarray] = {}  # backend -> newest mask not yet checked
        self.busy: str | None = None  # the backend whose mask is being checked
        self.checked: dict[str, tuple[np.ndarray, Certificate]] = {}  # backend -> its last checked mask
        self.closed = False
        threading.Thread(target=self._loop, daemon=True, name="smug-certifier").start()

    def offer(self, backend: str, mask: np.ndarray) -> None:
        with self.cond:
            self.waiting[backend] = np.asarray(mask, dtype=bool)
            self.cond.notify()

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.closed and (not self.waiting or time.perf_counter() < self.start):
                    self.cond.wait(max(POLL_S, self.start - time.perf_counter()))
                if self.closed:
                    return
                backend, mask = self.waiting.popitem()
                self.busy = backend
            cert = self.check(self.problem, mask)
            with self.cond:
                if cert.valid:  # every reported mask passed the exact check in the child; checked again here
                    self.checked[backend] = (mask, cert)
                self.busy = None
                self.cond.notify_all()

    def best(self, backend: str, newest: np.ndarray) -> tuple[np.ndarray, Certificate] | None:
        """The backend's last checked mask with its certificate, at once (``newest``, its last reported
        mask, or an earlier, larger one when ``newest`` is still unchecked); when none was checked yet,
        ``newest``, checked by the thread or here, whichever comes first.  None: it failed the check."""
        with self.cond:
            while backend not in self.checked and self.busy == backend:  # its first mask, being checked
                self.cond.wait()
            if backend in self.checked:
                return self.checked[backend]
            self.waiting.pop(backend, None)
        cert = self.check(self.problem, newest)
        return (newest, cert) if cert.valid else None

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


@dataclass
class _Member:
    """One backend's host and what it reported."""

    backend: str
    host: solve_host.Host
    solution: Solution | None = None
    error: str | None = None
    best: Improved | None = None  # its last improved mask

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
    certifier = _Certifier(problem, t0)
    try:
        for b in members:
            race[b] = _Member(b, solve_host.start(solver, problem, b, timeout, memory_mb))
        winner = _collect(race, t0 + timeout + grace, progress, certifier)
        sol = winner or _best_of(race, backend, certifier)
    finally:
        certifier.close()
        for m in race.values():  # a host that answered takes the next solve; the others end now
            solve_host.finish(m.host, reusable=m.solution is not None)
    elapsed = time.perf_counter() - t0
    if backend == PORTFOLIO:
        sol = replace(sol, backend=f"portfolio:{sol.backend}")
    return replace(sol, timings={**sol.timings, "isolated_total": elapsed})


def _collect(race: dict[str, _Member], kill_at: float, progress: Progress | None,
             certifier: _Certifier) -> Solution | None:
    """Read the hosts' messages until one proves its answer, all settled, ``kill_at``, or
    :func:`stop_early`.  A host that ends without an answer is seen as its pipe's end, after its
    last message."""
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
            if kind == "event" and isinstance(payload, Improved):
                if m.best is None or payload.size < m.best.size:
                    certifier.offer(m.backend, payload.mask)
                m.best = payload
                lower = max(lower, payload.lower_bound)
                if progress is not None:  # a racing member may know a better bound
                    progress(replace(payload, lower_bound=lower, backend=m.backend))
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


def _best_of(race: dict[str, _Member], backend: str, certifier: _Certifier) -> Solution:
    """No proven answer: the smallest verified mask any child returned or reported (a reported one
    with the certificate :class:`_Certifier` made), with the largest proven lower bound; ``unknown``
    when there is none."""
    lower = max([m.solution.lower_bound for m in race.values() if m.solution] +
                [m.best.lower_bound for m in race.values() if m.best is not None] + [0])
    candidates = [m.solution for m in race.values() if m.solution is not None and m.solution.mask is not None]
    for m in race.values():
        if m.solution is None and m.best is not None and m.best.mask is not None:
            checked = certifier.best(m.backend, np.asarray(m.best.mask, dtype=bool))
            if checked is not None:
                mask, cert = checked
                candidates.append(Solution.feasible(
                    mask, lower, m.backend, f"{m.error}: best verified mask it reported, and the proven lower bound",
                    cert, components=0))
    if not candidates:
        why = "; ".join(f"{m.backend}: {m.error or m.solution.proof}" for m in race.values())
        return Solution.unknown(backend, f"no verified mask ({why})", lower_bound=lower)
    best = min(candidates, key=lambda s: s.objective)
    return replace(best, lower_bound=max(lower, best.lower_bound))
