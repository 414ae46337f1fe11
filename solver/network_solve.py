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
from smug.solver.certificate import certify_network
from smug.solver.network_bounds import interval_bounds
from smug.solver.network_enum import enumerate_optimum, masks_up_to, relevant_variables
from smug.solver.solve import Solution, check_request

NETWORK_BACKENDS = ("auto", "highs", "enum", "z3")
MAX_ENUMERATED_MASKS = 20_000_000
QUICK_MASKS = 2_000_000


def solve_network(problem: NetworkProblem, backend: str = "auto", timeout: float = 60.0, prove: bool = True,
                  max_masks: int = MAX_ENUMERATED_MASKS, progress: Callable[[dict], None] | None = None) -> Solution:
    """Smallest mask whose masked input keeps ``problem.target`` (see the module docstring);
    ``progress`` as in :func:`smug.solver.solve.solve` (verified masks and proven bounds)."""
    check_request(backend, NETWORK_BACKENDS, timeout)
    t0 = time.perf_counter()
    deadline = t0 + timeout
    timings: dict[str, float] = {}
    bounds = interval_bounds(problem)
    unstable = sum(int(b.unstable.sum()) for b, layer in zip(bounds, problem.layers) if layer.relu)
    stats = {"unstable_relus": unstable, "relus": sum(l.weight.shape[0] for l in problem.layers if l.relu)}
    timings["bounds"] = time.perf_counter() - t0
    R = relevant_variables(problem)

    def done(mask, lb, proof, proven) -> Solution:
        t = time.perf_counter()
        cert = certify_network(problem, mask) if mask is not None else None
        timings["certify"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        if mask is None:
            return Solution("unknown", None, None, lb, backend, proof, None, 0, timings, stats)
        if not cert.valid:  # cannot happen: every mask was certified when found
            return Solution("unknown", None, None, lb, backend, "mask failed the exact check", cert, 0, timings, stats)
        status = "optimal" if proven else "feasible"
        return Solution(status, mask, int(mask.sum()), int(mask.sum()) if proven else lb, backend, proof, cert,
                        0, timings, stats)

    empty = np.zeros(problem.n_vars, dtype=bool)
    if certify_network(problem, empty).valid:
        return done(empty, 0, "the empty mask keeps the class (checked exactly)", True)
    full = np.zeros(problem.n_vars, dtype=bool)
    full[R] = True
    # the unmasked input is the natural start, but with delta > 0 it may fail while a
    # smaller mask passes (masking can widen the margin): then there is no start
    start = full if certify_network(problem, full).valid else None

    def report(mask, lb) -> None:
        if progress is not None and mask is not None:
            progress({"event": "improved", "size": int(mask.sum()), "lower_bound": int(lb),
                      "elapsed": time.perf_counter() - t0, "mask": mask.copy()})

    report(start, 1)

    def infeasible(proof: str) -> Solution:
        timings["total"] = time.perf_counter() - t0
        return Solution("infeasible", None, None, 0, backend, proof, None, 0, timings, stats)

    if backend == "enum":
        t = time.perf_counter()
        res = enumerate_optimum(problem, bounds, len(R), deadline, lower_bound=1)
        timings["enum"] = time.perf_counter() - t
        if res.mask is not None:
            return done(res.mask, res.lower_bound, "exhaustive: every smaller mask refuted exactly", True)
        if res.lower_bound > len(R):
            return infeasible("exhaustive: no mask over the relevant variables keeps the class (exact)")
        return done(start, res.lower_bound, "enumeration stopped at the deadline", False)
    if backend == "z3":
        from smug.solver.network_z3 import minimise_network

        t = time.perf_counter()
        res = minimise_network(problem, bounds, deadline, start=start, lower_bound=1)
        timings["z3"] = time.perf_counter() - t
        if res.mask is None and res.proven:
            return infeasible("z3 exact LRA: unsat for every mask")
        return done(res.mask, res.lower_bound, "z3 exact LRA: unsat below the mask size" if res.proven
                    else "z3 stopped before a proof", res.proven)

    lower = 1
    if backend == "auto":
        quick = 0
        while quick < len(R) and masks_up_to(len(R), quick + 1) <= QUICK_MASKS:
            quick += 1
        t = time.perf_counter()
        res = enumerate_optimum(problem, bounds, quick, deadline, lower_bound=1)
        timings["enum"] = time.perf_counter() - t
        if res.mask is not None:
            return done(res.mask, res.lower_bound, "exhaustive: every smaller mask refuted exactly", True)
        lower = res.lower_bound
        report(start, lower)

    from smug.solver.network_milp import solve_network_milp

    t = time.perf_counter()
    candidate = start
    for attempt in range(3):
        milp = solve_network_milp(problem, bounds, max(0.01, deadline - time.perf_counter()), 1e-4 * 10**attempt)
        if milp.mask is not None and certify_network(problem, milp.mask).valid:
            if candidate is None or milp.mask.sum() < candidate.sum():
                candidate = milp.mask
            break
    timings["highs"] = time.perf_counter() - t
    if candidate is not start:
        report(candidate, lower)
    if candidate is None:  # no start and HiGHS found nothing: settle it exactly
        if masks_up_to(len(R), len(R)) <= max_masks:
            res = enumerate_optimum(problem, bounds, len(R), deadline, lower_bound=lower)
            if res.mask is not None:
                return done(res.mask, res.lower_bound, "exhaustive: every smaller mask refuted exactly", True)
            if res.lower_bound > len(R):
                return infeasible("exhaustive: no mask over the relevant variables keeps the class (exact)")
            return done(None, res.lower_bound, "enumeration stopped at the deadline", False)
        from smug.solver.network_z3 import minimise_network

        res = minimise_network(problem, bounds, deadline, start=None, lower_bound=lower)
        if res.mask is None and res.proven:
            return infeasible("z3 exact LRA: unsat for every mask")
        return done(res.mask, res.lower_bound, "z3 exact LRA: unsat below the mask size" if res.proven
                    else "z3 stopped before a proof", res.proven)
    if not prove:
        return done(candidate, lower, "HiGHS candidate, not proven (prove=False)", False)
    s = int(candidate.sum())
    t = time.perf_counter()
    if masks_up_to(len(R), s - 1) <= max_masks:
        res = enumerate_optimum(problem, bounds, s - 1, deadline, lower_bound=lower)
        timings["prove"] = time.perf_counter() - t
        if res.mask is not None:  # the margin made HiGHS miss a smaller mask
            return done(res.mask, res.lower_bound, "exhaustive: every smaller mask refuted exactly", True)
        proven = res.lower_bound >= s
        return done(candidate, res.lower_bound, "exhaustive: every smaller mask refuted exactly" if proven
                    else "enumeration stopped at the deadline", proven)
    from smug.solver.network_z3 import minimise_network

    res = minimise_network(problem, bounds, deadline, start=candidate, lower_bound=lower)
    timings["prove"] = time.perf_counter() - t
    return done(res.mask, res.lower_bound, "z3 exact LRA: unsat below the mask size" if res.proven
                else "z3 stopped before a proof", res.proven)
