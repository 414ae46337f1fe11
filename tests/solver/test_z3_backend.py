"""The z3 backend's canonical tie-break and its handling of a cancelled search (issue 31), against
brute force over every mask (exact Fraction reference)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from smug.solver.components import split
from smug.solver.exact import collapsed_rows
from smug.solver.solve import BACKENDS, CANONICAL, solve
from smug.solver.z3_backend import _Best, _maxsat, canonical, hard_constraints, satisfies
import _reference as ref  # tests/solver/_reference.py, on sys.path via tests/conftest.py

from test_solve import CASES


def _canonical_reference(problem) -> np.ndarray:
    """The least bit string (variable 0 first, off before on) among every minimum mask (brute force)."""
    k, _ = ref.ref_minimum(problem)
    n = problem.n_vars
    masks = []
    for on in itertools.combinations(range(n), k):
        mask = np.zeros(n, dtype=bool)
        mask[list(on)] = True
        if ref.ref_valid(problem, mask):
            masks.append(mask)
    return min(masks, key=lambda m: tuple(m.tolist()))


def _tied(problem) -> bool:
    """More than one minimum mask: the tie-break has something to decide."""
    k, _ = ref.ref_minimum(problem)
    count = 0
    for on in itertools.combinations(range(problem.n_vars), k):
        mask = np.zeros(problem.n_vars, dtype=bool)
        mask[list(on)] = True
        count += ref.ref_valid(problem, mask)
    return count > 1


@pytest.fixture(scope="module")
def problems():
    return [ref.random_problem(**case) for case in CASES]


def test_the_cases_have_ties(problems):
    assert sum(_tied(p) for p in problems) >= 6


@pytest.mark.parametrize("index", range(len(CASES)))
def test_every_backend_returns_the_canonical_minimum_mask(problems, index):
    problem = problems[index]
    want = _canonical_reference(problem)
    for backend in BACKENDS:
        sol = solve(problem, backend=backend, timeout=30)
        assert sol.status == "optimal" and sol.stats["tie_break"] == CANONICAL, (backend, sol.proof)
        assert np.array_equal(sol.mask, want), backend
        assert ref.ref_valid(problem, sol.mask)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_canonical_from_any_minimum_mask(problems, index):
    """Whichever minimum mask the pass starts from, it ends at the same one."""
    problem = problems[index]
    want = _canonical_reference(problem)
    k, _ = ref.ref_minimum(problem)
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    starts = []
    for on in itertools.combinations(range(problem.n_vars), k):
        mask = np.zeros(problem.n_vars, dtype=bool)
        mask[list(on)] = True
        if ref.ref_valid(problem, mask):
            starts.append(mask)
    for start in starts[:4] + starts[-4:]:
        out = start.copy()
        for comp in split(problem)[0]:
            comp_rows = [rows[i] for i in comp.rows]
            out[comp.vars], done = canonical(comp_rows, comp.vars, start[comp.vars], time.perf_counter() + 30)
            assert done
        assert np.array_equal(out, want)


def test_canonical_says_when_the_deadline_came_first(problems):
    problem = next(p for p in problems if _tied(p))
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    comp = max(split(problem)[0], key=lambda c: len(c.vars))
    k, mask = ref.ref_minimum(problem)
    start = mask[comp.vars]
    out, done = canonical([rows[i] for i in comp.rows], comp.vars, start, time.perf_counter() - 1)
    assert not done and np.array_equal(out, start)  # nothing decided: the given minimum mask comes back


def test_a_search_cancelled_inside_the_model_callback_answers_unknown_not_a_crash(problems):
    """Issue 31: z3 reports a cancellation that strikes while a model is read as ``Z3Exception:
    canceled`` out of ``check``; the search must end with what it had (its start mask, its bound)."""
    import z3

    problem = problems[0]
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    variables = list(range(problem.n_vars))
    ctx = z3.Context()
    m = {j: z3.Bool(f"m{j}", ctx) for j in variables}
    start = np.ones(problem.n_vars, dtype=bool)
    assert satisfies(rows, set(variables))
    best = _Best(rows, variables, start)
    reads = []

    def read(model):  # the deadline's timer strikes just as the model is read
        ctx.interrupt()
        reads.append(1)
        return np.array([z3.is_true(model.eval(m[j], model_completion=True)) for j in variables])

    lb = _maxsat(z3, hard_constraints(z3, rows, m), m, variables, best, read, time.perf_counter() + 30, 0)
    assert reads, "z3 never called back: the test did not exercise the callback"
    assert lb == 0 and np.array_equal(best.mask, start)  # nothing proven, nothing lost


def test_an_unsat_after_the_deadline_is_unknown():
    """z3's own timeout and the interrupt both land after the deadline; a cut-short Optimize's
    'unsat' there proves nothing."""
    import z3

    from smug.solver.z3_backend import _check

    class LateUnsat:  # answers unsat, but only once the deadline has passed
        ctx = z3.Context()

        def check(self, *assumptions):
            time.sleep(0.2)
            return z3.unsat

    assert _check(LateUnsat(), time.perf_counter() + 0.05) == z3.unknown
    assert _check(LateUnsat(), time.perf_counter() + 30) == z3.unsat


def test_a_verified_mask_outweighs_an_engines_unsatisfiable(monkeypatch):
    """Whatever an exact engine claims, a problem with a mask that passed the exact check is never
    reported infeasible (seen once under load: 'z3: component unsatisfiable' on a solvable problem)."""
    import smug.solver.solve as solve_module
    from smug.solver import rc2_backend
    from smug.solver.z3_backend import SearchResult

    def false_claim(rows, variables, *args, **kwargs):
        return SearchResult(None, 0, True, 0.0)

    monkeypatch.setattr(solve_module, "minimise", false_claim)
    monkeypatch.setattr(rc2_backend, "minimise_rc2", false_claim)
    for index in range(3):
        problem = ref.random_problem(**CASES[index])
        sol = solve(problem, backend="z3", timeout=10)
        assert sol.status in ("feasible", "optimal") and sol.certificate.valid, sol.proof
        assert ref.ref_valid(problem, sol.mask)


def test_interrupted_at_says_whether_it_fired():
    import threading

    from smug.solver.z3_backend import interrupted_at

    called = threading.Event()
    with interrupted_at(time.perf_counter() + 30, called.set) as fired:
        pass
    assert not fired.is_set() and not called.is_set()
    with interrupted_at(time.perf_counter(), called.set) as fired:
        assert called.wait(30)  # the interrupt ran, and the event was set before it
        assert fired.is_set()
