"""One answer per request for whole-network problems: the canonical minimum mask (issue 31).

The tie-break is the first layer's (:mod:`smug.solver.tie_break`): among every mask of the
optimum's size that keeps the class, the least read as a bit string in variable order, found
by the same exact greedy.  The question "is there a mask of size ``k`` that keeps the variables
decided on, leaves out those decided off and this one?" is the enumeration's (:mod:`smug.solver.network_enum`:
rigorous float filter, exact checks), run on the problem with the decided-on variables moved
into the input (their baseline set to the input: always on) over the free relevant variables.
A mask found is certified exactly on the original problem.  Only relevant variables can be on in a
minimum mask (an irrelevant one changes nothing, so dropping it would give a smaller mask).

:func:`solve_canonical` is the whole-network entry point of the solver registry
(:func:`smug.solver.entry.solver_for`): :func:`~smug.solver.network_solve.solve_network`,
then this pass with the time left; ``stats["tie_break"]`` says whether it completed.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from smug.deadline import DEFAULT_TIMEOUT
from smug.events import Progress
from smug.ir import NetworkProblem
from smug.solver.certificate import certify_network
from smug.solver.network_bounds import BoundContext, crown_bounds, interval_bounds, margin_lines
from smug.solver.network_enum import enumerate_optimum, relevant_variables
from smug.solver.network_solve import solve_network
from smug.solver.solve import CANONICAL, NOT_CANONICAL, Solution
from smug.solver.tie_break import UNDECIDED, least_minimum


def _with_on(problem: NetworkProblem, forced: list[int]) -> NetworkProblem:
    """``problem`` with the variables ``forced`` always on (their inputs' baseline is the input)."""
    on = np.isin(problem.group, forced)
    return replace(problem, baseline=np.where(on, problem.x, problem.baseline))


def _mask_of(n_vars: int, on) -> np.ndarray:
    mask = np.zeros(n_vars, dtype=bool)
    mask[list(on)] = True
    return mask


def _keeping(problem: NetworkProblem, forced: list[int], off: set[int], k: int, deadline: float):
    """A mask of ``k`` variables that keeps the class, holds ``forced`` and avoids ``off`` (certified
    exactly); None when none exists; :data:`UNDECIDED` when the search stopped first."""
    size = k - len(forced)
    if size == 0:
        mask = _mask_of(problem.n_vars, forced)
        return mask if certify_network(problem, mask).valid else None
    sub = _with_on(problem, forced)
    free = np.array([v for v in relevant_variables(sub).tolist() if v not in off], dtype=np.int64)
    if len(free) < size:
        return None
    interval, context = interval_bounds(sub), BoundContext.of(sub)  # one context for the bounds and the lines

    def sized(s: int):
        bounds = crown_bounds(sub, interval, max_size=s, context=context)
        return bounds, margin_lines(sub, bounds, context)[:2]

    res = enumerate_optimum(sub, sized, size, deadline, lower_bound=size, order=free)
    if res.mask is not None:
        mask = res.mask | _mask_of(problem.n_vars, forced)
        return mask if int(mask.sum()) == k and certify_network(problem, mask).valid else UNDECIDED
    return None if res.stopped is None and res.lower_bound > size else UNDECIDED


def canonical_network(problem: NetworkProblem, mask: np.ndarray, deadline: float) -> tuple[np.ndarray, bool]:
    """The canonical minimum mask of ``problem`` (:mod:`smug.solver.tie_break`) from ``mask``, a
    minimum one (proven), and whether the greedy completed before ``deadline``."""
    k = int(np.sum(mask))

    def ask(decided: dict[int, bool], j: int):
        forced = [v for v, on in decided.items() if on]
        return _keeping(problem, forced, {v for v, on in decided.items() if not on} | {j}, k, deadline)

    return least_minimum(range(problem.n_vars), mask, deadline, ask)


def solve_canonical(problem: NetworkProblem, backend: str = "auto", timeout: float = DEFAULT_TIMEOUT,
                    progress: Progress | None = None, **options) -> Solution:
    """:func:`~smug.solver.network_solve.solve_network`, then (on a proven optimum) the canonical
    tie-break in the time left of ``timeout``."""
    t0 = time.perf_counter()
    sol = solve_network(problem, backend=backend, timeout=timeout, progress=progress, **options)
    if sol.status != "optimal" or sol.mask is None:
        return sol
    t = time.perf_counter()
    mask, done = canonical_network(problem, sol.mask, t0 + timeout)
    cert = certify_network(problem, mask)
    if not cert.valid:  # cannot happen: every mask adopted was certified
        mask, done, cert = sol.mask, False, sol.certificate
    tie_break = CANONICAL if done else NOT_CANONICAL
    return replace(sol, mask=mask, certificate=cert, stats={**sol.stats, "tie_break": tie_break},
                   proof=sol.proof if done else f"{sol.proof}; tie-break {tie_break}",
                   timings={**sol.timings, "tie_break": time.perf_counter() - t})
