"""Minimal masks for the whole-network problem (paper 003 Appendix A): find, prove, certify.

Backends (one interface, each returns a :class:`~smug.solver.solve.Solution`):

* ``highs``: big-M MILP candidate (certified exactly), then an exact proof;
* ``enum``: exhaustive search over small masks with an error-bounded float filter
  and exact checks (:mod:`smug.solver.network_enum`);
* ``z3``: exact LRA with an ascending cardinality search;
* ``auto``: enumeration of the sizes whose masks number at most ``QUICK_MASKS``
  (about a second), then a HiGHS candidate proven by enumeration when the masks
  smaller than it are few enough, else by z3.

``status`` is ``optimal`` only with an exact proof; on a timeout the best verified
mask comes back as ``feasible`` with the best proven lower bound.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from smug.ir import NetworkProblem
from smug.solver.backends import WHOLE_NETWORK
from smug.solver.certificate import certify_network
from smug.solver.network_bounds import interval_bounds
from smug.solver.network_enum import EnumResult, enumerate_optimum, masks_up_to, relevant_variables
from smug.solver.solve import Solution, check_request

NETWORK_BACKENDS = WHOLE_NETWORK  # alias: the registry in smug.solver.backends owns the list
MAX_ENUMERATED_MASKS = 20_000_000
QUICK_MASKS = 2_000_000

EMPTY_KEEPS = "the empty mask keeps the class (checked exactly)"
EXHAUSTIVE = "exhaustive: every smaller mask refuted exactly"
EXHAUSTIVE_NO_MASK = "exhaustive: no mask over the relevant variables keeps the class (exact)"
ENUM_STOPPED = "enumeration stopped at the deadline"
Z3_PROVEN = "z3 exact LRA: unsat below the mask size"
Z3_STOPPED = "z3 stopped before a proof"
Z3_NO_MASK = "z3 exact LRA: unsat for every mask"
NOT_PROVEN = "HiGHS candidate, not proven (prove=False)"
CERTIFY_FAILED = "mask failed the exact check"


class _Run:
    """One :func:`solve_network` call: the problem and its bounds, the clock, and the answers."""

    def __init__(self, problem: NetworkProblem, backend: str, timeout: float,
                 progress: Callable[[dict], None] | None):
        self.problem, self.backend, self.progress = problem, backend, progress
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + timeout
        self.timings: dict[str, float] = {}
        self.bounds = interval_bounds(problem)
        unstable = sum(int(b.unstable.sum()) for b, layer in zip(self.bounds, problem.layers) if layer.relu)
        self.stats = {"unstable_relus": unstable, "relus": sum(l.weight.shape[0] for l in problem.layers if l.relu)}
        self.timings["bounds"] = time.perf_counter() - self.t0
        self.relevant = relevant_variables(problem)

    @property
    def n_relevant(self) -> int:
        return len(self.relevant)

    def start_mask(self) -> np.ndarray | None:
        """Every relevant variable on, when that passes exactly.  With delta > 0 it may fail
        while a smaller mask passes (masking can widen the margin): then there is no start."""
        full = np.zeros(self.problem.n_vars, dtype=bool)
        full[self.relevant] = True
        return full if certify_network(self.problem, full).valid else None

    def report(self, mask: np.ndarray | None, lower: int) -> None:
        if self.progress is not None and mask is not None:
            self.progress({"event": "improved", "size": int(mask.sum()), "lower_bound": int(lower),
                           "elapsed": time.perf_counter() - self.t0, "mask": mask.copy()})

    def done(self, mask: np.ndarray | None, lower: int, proof: str, proven: bool) -> Solution:
        """The answer for ``mask`` (None: no verified mask), certified exactly."""
        t = time.perf_counter()
        cert = certify_network(self.problem, mask) if mask is not None else None
        self.timings["certify"] = time.perf_counter() - t
        self.timings["total"] = time.perf_counter() - self.t0
        common = dict(timings=self.timings, stats=self.stats)
        if mask is None:
            return Solution.unknown(self.backend, proof, lower, **common)
        if not cert.valid:  # cannot happen: every mask was certified when found
            return Solution.unknown(self.backend, CERTIFY_FAILED, lower, cert, **common)
        if proven:
            return Solution.optimal(mask, self.backend, proof, cert, **common)
        return Solution.feasible(mask, lower, self.backend, proof, cert, **common)

    def infeasible(self, proof: str) -> Solution:
        self.timings["total"] = time.perf_counter() - self.t0
        return Solution.infeasible(self.backend, proof, timings=self.timings, stats=self.stats)

    def enumerate(self, max_size: int, lower: int, key: str | None = None) -> EnumResult:
        """Exhaustive search over masks of at most ``max_size`` relevant variables (timed as ``key``)."""
        t = time.perf_counter()
        res = enumerate_optimum(self.problem, self.bounds, max_size, self.deadline, lower_bound=lower)
        if key is not None:
            self.timings[key] = time.perf_counter() - t
        return res

    def exhaust(self, fallback: np.ndarray | None, lower: int, key: str | None = None) -> Solution:
        """Enumeration over every size: the optimum, a proof that none exists, or ``fallback``
        with the bound reached at the deadline."""
        res = self.enumerate(self.n_relevant, lower, key)
        if res.mask is not None:
            return self.done(res.mask, res.lower_bound, EXHAUSTIVE, True)
        if res.lower_bound > self.n_relevant:
            return self.infeasible(EXHAUSTIVE_NO_MASK)
        return self.done(fallback, res.lower_bound, ENUM_STOPPED, False)

    def z3(self, start: np.ndarray | None, lower: int, key: str | None = None) -> Solution:
        """z3's exact ascending cardinality search from ``start`` (timed as ``key``)."""
        from smug.solver.network_z3 import minimise_network

        t = time.perf_counter()
        res = minimise_network(self.problem, self.bounds, self.deadline, start=start, lower_bound=lower)
        if key is not None:
            self.timings[key] = time.perf_counter() - t
        if res.mask is None and res.proven:
            return self.infeasible(Z3_NO_MASK)
        return self.done(res.mask, res.lower_bound, Z3_PROVEN if res.proven else Z3_STOPPED, res.proven)


def solve_network(problem: NetworkProblem, backend: str = "auto", timeout: float = 60.0, prove: bool = True,
                  max_masks: int = MAX_ENUMERATED_MASKS, progress: Callable[[dict], None] | None = None) -> Solution:
    """Smallest mask whose masked input keeps ``problem.target`` (see the module docstring);
    ``progress`` as in :func:`smug.solver.solve.solve` (verified masks and proven bounds)."""
    check_request(backend, NETWORK_BACKENDS, timeout)
    run = _Run(problem, backend, timeout, progress)
    empty = np.zeros(problem.n_vars, dtype=bool)
    if certify_network(problem, empty).valid:
        return run.done(empty, 0, EMPTY_KEEPS, True)
    start = run.start_mask()
    run.report(start, 1)
    if backend == "enum":
        return run.exhaust(start, 1, "enum")
    if backend == "z3":
        return run.z3(start, 1, "z3")
    lower = 1
    if backend == "auto":
        res = run.enumerate(_quick_size(run.n_relevant), 1, "enum")
        if res.mask is not None:
            return run.done(res.mask, res.lower_bound, EXHAUSTIVE, True)
        lower = res.lower_bound
        run.report(start, lower)
    candidate = _highs_candidate(run, start, lower)
    if candidate is None:  # no start and HiGHS found nothing: settle it exactly
        if masks_up_to(run.n_relevant, run.n_relevant) <= max_masks:
            return run.exhaust(None, lower)
        return run.z3(None, lower)
    if not prove:
        return run.done(candidate, lower, NOT_PROVEN, False)
    return _prove(run, candidate, lower, max_masks)


def _quick_size(n: int) -> int:
    """The largest mask size whose masks over ``n`` variables number at most ``QUICK_MASKS``."""
    quick = 0
    while quick < n and masks_up_to(n, quick + 1) <= QUICK_MASKS:
        quick += 1
    return quick


def _highs_candidate(run: _Run, start: np.ndarray | None, lower: int) -> np.ndarray | None:
    """The smaller of ``start`` and a certified big-M MILP mask (margin 1e-4, 1e-3, 1e-2 until one passes)."""
    from smug.solver.network_milp import solve_network_milp

    t = time.perf_counter()
    candidate = start
    for attempt in range(3):
        milp = solve_network_milp(run.problem, run.bounds, max(0.01, run.deadline - time.perf_counter()),
                                  1e-4 * 10**attempt)
        if milp.mask is not None and certify_network(run.problem, milp.mask).valid:
            if candidate is None or milp.mask.sum() < candidate.sum():
                candidate = milp.mask
            break
    run.timings["highs"] = time.perf_counter() - t
    if candidate is not start:
        run.report(candidate, lower)
    return candidate


def _prove(run: _Run, candidate: np.ndarray, lower: int, max_masks: int) -> Solution:
    """Refute every smaller mask: by enumeration when they are few enough, else by z3."""
    size = int(candidate.sum())
    if masks_up_to(run.n_relevant, size - 1) > max_masks:
        return run.z3(candidate, lower, "prove")
    res = run.enumerate(size - 1, lower, "prove")
    if res.mask is not None:  # the margin made HiGHS miss a smaller mask
        return run.done(res.mask, res.lower_bound, EXHAUSTIVE, True)
    proven = res.lower_bound >= size
    return run.done(candidate, res.lower_bound, EXHAUSTIVE if proven else ENUM_STOPPED, proven)
