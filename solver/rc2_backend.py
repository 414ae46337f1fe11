"""python-sat engines for components whose rows all compile to clauses: RC2 (a second exact MaxSAT
engine) and an incremental SAT solver for the canonical tie-break.

The clauses are the same minimal CNF z3 gets (:func:`~smug.solver.z3_backend.threshold_clauses`),
one soft ``not m_j`` per variable; RC2's answer is a minimum mask (its cost is the optimum), checked
exactly before it is used.  :mod:`smug.solver.solve` hands a component here when z3 did not prove
it in its share of the time (issue 31: z3 cancelled at the deadline where RC2 on the same clauses
proved the optimum in 0.8 s).  :func:`canonical_sat` answers the tie-break's questions
(:func:`smug.solver.z3_backend.canonical`, the same definition and the same greedy) with one
incremental SAT solver and a cardinality encoding: on the hard 7x7 first-layer family its
questions take about a tenth of z3's time.  python-sat is optional (the ``smtlib`` extra):
without it :func:`available` is False and z3 does both jobs.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from smug.solver.tie_break import UNDECIDED, least_minimum
from smug.solver.z3_backend import Row, SearchResult, adopted, interrupted_at, satisfies, threshold_clauses


def available() -> bool:
    """Whether python-sat is installed."""
    return importlib.util.find_spec("pysat") is not None


def _clauses(rows: list[Row], number: dict[int, int]) -> list[list[int]]:
    """The rows' minimal CNF over the DIMACS numbers ``number`` of their variables."""
    return [[number[j] if value else -number[j] for j, value in clause]
            for coef, r in rows for clause in threshold_clauses(coef, r)]


def canonical_sat(rows: list[Row], variables: np.ndarray, mask: np.ndarray, deadline: float) -> tuple[np.ndarray, bool]:
    """:func:`smug.solver.z3_backend.canonical` (same greedy, same return) with python-sat: the rows'
    clauses and ``at most mask.sum()`` (a k-bounded totalizer) in one solver, each question asked
    under assumptions and interrupted at ``deadline``."""
    from pysat.card import CardEnc, EncType
    from pysat.solvers import Solver

    variables = [int(v) for v in variables]
    k = int(np.sum(mask))
    number = {j: t + 1 for t, j in enumerate(variables)}
    card = CardEnc.atmost(list(range(1, len(variables) + 1)), bound=k, top_id=len(variables),
                          encoding=EncType.kmtotalizer)
    with Solver(name="g3", bootstrap_with=_clauses(rows, number) + card.clauses) as sat:

        def ask(decided: dict[int, bool], j: int):
            assumptions = [number[v] if on else -number[v] for v, on in decided.items()] + [-number[j]]
            with interrupted_at(deadline, sat.interrupt) as fired:
                answer = sat.solve_limited(assumptions=assumptions, expect_interrupt=True)
            sat.clear_interrupt()
            if answer is None or fired.is_set():  # interrupted at the deadline: nothing decided
                return UNDECIDED
            if not answer:
                return None
            on = {lit for lit in sat.get_model() if 0 < lit <= len(variables)}
            return adopted(rows, variables, np.array([number[v] in on for v in variables]), k)

        return least_minimum(variables, mask, deadline, ask)


def minimise_rc2(rows: list[Row], variables: np.ndarray, deadline: float, lower_bound: int = 0) -> SearchResult:
    """Smallest mask over ``variables`` satisfying ``rows`` (every row narrow enough for clauses) by
    RC2, interrupted at ``deadline``: proven when RC2 finished; ``mask`` None and ``proven`` when the
    clauses are unsatisfiable; ``mask`` None and not proven when the deadline came first."""
    from pysat.examples.rc2 import RC2
    from pysat.formula import WCNF

    t0 = time.perf_counter()
    variables = [int(v) for v in variables]
    number = {j: t + 1 for t, j in enumerate(variables)}
    wcnf = WCNF()
    for clause in _clauses(rows, number):
        wcnf.append(clause)
    for j in variables:
        wcnf.append([-number[j]], weight=1)
    if time.perf_counter() >= deadline:
        return SearchResult(None, lower_bound, False, time.perf_counter() - t0)
    with RC2(wcnf) as rc2, interrupted_at(deadline, rc2.interrupt) as fired:
        model = rc2.compute(expect_interrupt=True)
        interrupted = fired.is_set() or rc2.interrupted
    if model is None:
        return SearchResult(None, lower_bound, not interrupted, time.perf_counter() - t0)
    on = {abs(lit) for lit in model if lit > 0}
    mask = np.array([number[j] in on for j in variables])
    if interrupted or not satisfies(rows, {j for j, b in zip(variables, mask) if b}):
        return SearchResult(None, lower_bound, False, time.perf_counter() - t0)  # never trust an unchecked mask
    size = int(mask.sum())
    return SearchResult(mask, max(lower_bound, size), True, time.perf_counter() - t0)
