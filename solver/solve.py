"""One entry point for every mask question: find, improve, prove, certify.

1. Split the problem into independent components (exact, structural).
2. Start from a verified mask (every variable a constraint reads switched on).
3. ``backend="auto"`` (with ``prove``): components whose rows all compile to clauses
   (:data:`~smug.solver.z3_backend.TABLE_ARITY`) go straight to z3's exact MaxSAT,
   for at most ``EXACT_SHARE`` of the time left.  On the hard 7x7 first-layer family
   this proves in about 1 s what HiGHS does not prove in 120 s (docs/benchmarks.md).
4. Get a candidate from HiGHS (``backend="highs"``, or ``"auto"`` for what step 3
   left open), kept per component only where it passes the exact check.  When a
   proof follows, HiGHS gets at most ``HIGHS_SHARE`` of the time left: its own
   optimality proof is in floating point and never used, only its incumbent.
5. Prove each remaining component optimal with z3 (``prove``), which also repairs
   any candidate that the float margin made sub-optimal.
6. Certify the combined mask exactly.  ``status`` is ``optimal`` only when every
   component was proven by the exact solver; on a timeout the best verified mask
   comes back as ``feasible`` with the best proven lower bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from smug.ir import LinearForm, MaskProblem, linear_form
from smug.solver.certificate import Certificate, certify
from smug.solver.components import split
from smug.solver.exact import collapsed_rows

BACKENDS = ("auto", "highs", "z3")
STATUSES = ("optimal", "feasible", "infeasible", "unknown")
EXACT_SHARE = 0.5  # "auto": share of the time left for z3 before HiGHS is asked
HIGHS_SHARE = 0.25  # share of the time left for the HiGHS candidate when a proof follows
CERTIFY_RESERVE = 0.5  # time kept for certify(), relative to the exact encoding's time


@dataclass(frozen=True)
class Solution:
    status: str
    mask: np.ndarray | None  # bool per mask variable
    objective: int | None
    lower_bound: int
    backend: str
    proof: str
    certificate: Certificate | None
    components: int  # independent parts of a first-layer problem (0 for whole networks)
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)  # backend facts, e.g. unstable ReLUs

    @property
    def proven_optimal(self) -> bool:
        return self.status == "optimal"


def check_request(backend: str, backends: tuple[str, ...], timeout: float) -> None:
    """The checks every solver entry point makes on its arguments."""
    if backend not in backends:
        raise ValueError(f"unknown backend {backend!r}; choose from {backends}")
    if timeout <= 0:
        raise ValueError("timeout must be positive")


def solve(
    problem: MaskProblem, backend: str = "auto", timeout: float = 60.0, prove: bool = True, margin: float = 1e-4,
    progress: Callable[[dict], None] | None = None,
) -> Solution:
    """Minimal mask for ``problem`` (see the module docstring).  ``progress`` (optional) is
    called with ``{"event": "improved", "size", "lower_bound", "elapsed", "mask"}`` whenever
    the verified mask shrinks or the proven lower bound grows."""
    from smug.solver.z3_backend import TABLE_ARITY, minimise, satisfies

    check_request(backend, BACKENDS, timeout)
    t0 = time.perf_counter()
    deadline = t0 + timeout
    timings: dict[str, float] = {}

    comps, free_rows = split(problem)
    all_rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    timings["encode_exact"] = time.perf_counter() - t0
    # keep time for the final exact certificate (about half the exact encoding's cost)
    deadline -= min(CERTIFY_RESERVE * timings["encode_exact"], 0.25 * timeout)
    if any(not (0 > r) for _, r in (all_rows[i] for i in free_rows)):
        return Solution("infeasible", None, None, 0, backend, "a constraint reads no mask variable and fails",
                        None, len(comps), timings)

    comps = sorted(comps, key=lambda c: len(c.vars))
    rows_of = [[all_rows[i] for i in c.rows] for c in comps]
    best = np.zeros(problem.n_vars, dtype=bool)
    for c in comps:
        best[c.vars] = True
    # per component: is best[c.vars] a verified mask, and a proven lower bound
    have = [satisfies(rows, set(c.vars.tolist())) for c, rows in zip(comps, rows_of)]
    lbs = [1 if any(r >= 0 for _, r in rows) else 0 for rows in rows_of]  # the empty mask fails a row

    reported = [None, -1]  # last (size, lower bound) sent to ``progress``

    def report() -> None:
        if progress is None or not all(have):
            return
        size, lower = int(best.sum()), int(sum(lbs))
        if reported[0] is None or size < reported[0] or lower > reported[1]:
            reported[:] = [size, lower]
            progress({"event": "improved", "size": size, "lower_bound": lower,
                      "elapsed": time.perf_counter() - t0, "mask": best.copy()})

    def closed(n: int) -> bool:
        return have[n] and int(best[comps[n].vars].sum()) <= lbs[n]

    def offer(n: int, mask: np.ndarray) -> bool:
        """Whether ``mask`` passes component n exactly; kept when it is also smaller."""
        c = comps[n]
        ok = satisfies(rows_of[n], set(c.vars[mask].tolist()))
        if ok and (not have[n] or mask.sum() < best[c.vars].sum()):
            best[c.vars], have[n] = mask, True
            report()
        return ok

    def exact(n: int, until: float) -> bool:
        """z3 on component n until ``until``; False when it proved the component unsatisfiable."""
        c = comps[n]
        found = minimise(rows_of[n], c.vars, best[c.vars] if have[n] else None, until, lbs[n])
        if found.mask is None:
            return not found.proven
        best[c.vars], have[n] = found.mask, True
        lbs[n] = max(lbs[n], found.lower_bound)
        report()
        return True

    def infeasible() -> Solution:
        return Solution("infeasible", None, None, 0, backend, "z3: component unsatisfiable", None, len(comps), timings)

    report()  # the starting mask, when every component has one
    if backend == "auto" and prove:  # exact first where every row is a clause set
        t1 = time.perf_counter()
        until = t1 + EXACT_SHARE * max(0.0, deadline - t1)
        for n, rows in enumerate(rows_of):
            if closed(n) or any(len(coef) > TABLE_ARITY for coef, _ in rows):
                continue
            if time.perf_counter() >= until:
                break
            if not exact(n, until):
                return infeasible()
        timings["exact_first"] = time.perf_counter() - t1

    open_ = [n for n in range(len(comps)) if not closed(n)]
    if backend in ("auto", "highs") and open_:
        from smug.solver.highs_backend import solve_milp

        t1 = time.perf_counter()
        until = t1 + (HIGHS_SHARE if prove else 1.0) * max(0.0, deadline - t1)
        rows = np.concatenate([comps[n].rows for n in open_])
        cols = np.concatenate([comps[n].vars for n in open_])
        form = linear_form(problem)
        sub = LinearForm(A=form.A[rows][:, cols].tocsr(), const=form.const[rows], rhs=form.rhs[rows])
        where = {int(j): t for t, j in enumerate(cols)}
        for attempt in range(3):
            res = solve_milp(sub, max(0.01, until - time.perf_counter()), margin * 10**attempt, start=best[cols])
            if res.mask is None:
                continue
            passed = [offer(n, res.mask[[where[int(j)] for j in comps[n].vars]]) for n in open_]
            if all(passed) or time.perf_counter() >= until:  # else: a larger margin
                break
        timings["highs"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    for n in open_:
        if closed(n) or (not prove and backend != "z3" and have[n]):
            continue
        if have[n] and time.perf_counter() >= deadline:  # out of time: keep its verified mask
            continue
        if not exact(n, deadline):
            return infeasible()
        if not have[n]:
            return Solution("unknown", None, None, 0, backend, "no verified mask before the deadline",
                            None, len(comps), timings)
    proven_all = all(closed(n) for n in range(len(comps)))
    lower = sum(lbs)
    timings["prove"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    cert = certify(problem, best)
    timings["certify"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    if not cert.valid:  # cannot happen unless a component check above is wrong
        return Solution("unknown", None, None, lower, backend, "combined mask failed the exact check",
                        cert, len(comps), timings)
    status = "optimal" if proven_all else "feasible"
    proof = (
        "exact: in every component the lower bound (z3 MaxSAT or cardinality search over exactly computed "
        "constraints, or the empty mask failing exactly) equals the mask size; mask certified exactly"
        if proven_all else "not proven optimal: best verified mask and best proven lower bound"
    )
    return Solution(status, best, int(best.sum()), lower if not proven_all else int(best.sum()), backend,
                    proof, cert, len(comps), timings)
