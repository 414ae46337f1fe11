"""RC2 (python-sat) as the second exact engine of clause-only components, against brute force; and the
solver's hand-over when z3 does not prove a component in its share (issue 31)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from smug.solver import rc2_backend
from smug.solver.components import split
from smug.solver.exact import collapsed_rows
from smug.solver.solve import SolveOptions, solve
from smug.solver.z3_backend import TABLE_ARITY
import _reference as ref  # tests/solver/_reference.py, on sys.path via tests/conftest.py

from test_solve import CASES

pytestmark = pytest.mark.skipif(not rc2_backend.available(), reason="python-sat is not installed")
NARROW = [i for i, c in enumerate(CASES) if c["wide_rows"] == 0]


@pytest.mark.parametrize("index", NARROW)
def test_rc2_finds_each_component_minimum(index):
    problem = ref.random_problem(**CASES[index])
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    total = 0
    for comp in split(problem)[0]:
        comp_rows = [rows[i] for i in comp.rows]
        assert all(len(coef) <= TABLE_ARITY for coef, _ in comp_rows)
        res = rc2_backend.minimise_rc2(comp_rows, comp.vars, time.perf_counter() + 30)
        assert res.proven and res.mask is not None and res.lower_bound == int(res.mask.sum())
        want, _ = ref.ref_minimum(problem, comp.rows)
        assert int(res.mask.sum()) == want
        total += want
    assert total == ref.ref_minimum(problem)[0]


def test_rc2_stops_at_its_deadline_without_a_claim():
    problem = ref.random_problem(**CASES[NARROW[0]])
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    comp = split(problem)[0][0]
    res = rc2_backend.minimise_rc2([rows[i] for i in comp.rows], comp.vars, time.perf_counter() - 1)
    assert not res.proven and res.mask is None


@pytest.mark.parametrize("backend", ["auto", "z3"])
def test_rc2_proves_what_z3_left_open(backend):
    """z3 given no time at all proves nothing; RC2 on the same clauses proves every component."""
    for index in NARROW[:6]:
        problem = ref.random_problem(**CASES[index])
        k, _ = ref.ref_minimum(problem)
        sol = solve(problem, backend=backend, timeout=30, options=SolveOptions(z3_share=0.0))
        assert sol.status == "optimal" and sol.objective == k and ref.ref_valid(problem, sol.mask), sol.proof


@pytest.mark.parametrize("index", NARROW)
def test_the_sat_tie_break_agrees_with_z3s_and_brute_force(index):
    from smug.solver.z3_backend import canonical

    from test_z3_backend import _canonical_reference

    problem = ref.random_problem(**CASES[index])
    want = _canonical_reference(problem)
    _, start = ref.ref_minimum(problem)
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    ours, theirs = start.copy(), start.copy()
    for comp in split(problem)[0]:
        comp_rows = [rows[i] for i in comp.rows]
        ours[comp.vars], done = rc2_backend.canonical_sat(comp_rows, comp.vars, start[comp.vars],
                                                         time.perf_counter() + 30)
        theirs[comp.vars], z3_done = canonical(comp_rows, comp.vars, start[comp.vars], time.perf_counter() + 30)
        assert done and z3_done
    assert np.array_equal(ours, want) and np.array_equal(theirs, want)


def test_the_sat_tie_break_says_when_the_deadline_came_first():
    problem = ref.random_problem(**CASES[NARROW[1]])
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    comp = max(split(problem)[0], key=lambda c: len(c.vars))
    _, start = ref.ref_minimum(problem)
    out, done = rc2_backend.canonical_sat([rows[i] for i in comp.rows], comp.vars, start[comp.vars],
                                          time.perf_counter() - 1)
    assert not done and np.array_equal(out, start[comp.vars])


def _feasible_clause_rows(n: int = 400, seed: int = 0) -> list:
    """n rows over 6 of n variables each, every one satisfied by the all-on mask (so a claim that
    no mask exists is false), and too many for RC2 to finish in 50 ms."""
    from fractions import Fraction

    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        coef = {int(v): Fraction(int(rng.integers(-2, 6))) for v in rng.choice(n, 6, replace=False)}
        if sum(coef.values()) > 0:
            rows.append((coef, sum(coef.values()) / 2))
    return rows


def test_an_interrupt_is_never_read_as_unsatisfiable(monkeypatch):
    """RC2 records its interruption only after interrupting its oracle; a run that returns in
    between (a thread switch under load) must not look like 'the clauses are unsatisfiable'.  Here
    the record never comes; the old reading of RC2's flag claimed a proof in about 4 runs of 5."""
    from pysat.examples.rc2 import RC2

    from smug.solver.z3_backend import satisfies

    def unrecorded(self) -> None:
        if self.oracle:
            self.oracle.interrupt()

    monkeypatch.setattr(RC2, "interrupt", unrecorded)
    rows = _feasible_clause_rows()
    n = len(rows)
    assert satisfies(rows, set(range(n)))
    for _ in range(3):
        res = rc2_backend.minimise_rc2(rows, np.arange(n), time.perf_counter() + 0.05)
        assert not res.proven and res.mask is None
