"""smug.solver.solve against brute force over every mask (exact Fraction reference)."""

from __future__ import annotations


import numpy as np
import pytest

import smug.solver.z3_backend as z3_backend
from smug.solver.components import split
from smug.solver.exact import collapsed_rows
from smug.solver.solve import BACKENDS, solve
from smug.solver.z3_backend import TABLE_ARITY
import _reference as ref  # tests/solver/_reference.py, on sys.path via tests/conftest.py

TIMEOUT = 30.0


def _narrow_case(i: int):
    """Rows over at most TABLE_ARITY variables (z3 compiles them to clauses)."""
    rng = np.random.default_rng(1000 + i)
    n_vars = int(rng.integers(3, 11))
    return dict(seed=2000 + i, n_vars=n_vars, n_rows=int(rng.integers(2, 7)), wide_rows=0,
                style="dyadic" if i % 2 else "normal", gamma=float(rng.choice([0.0, 0.5, 0.75, 0.9, 0.6])),
                max_narrow=int(rng.choice([3, 4, min(TABLE_ARITY, n_vars)])))


def _wide_case(i: int):
    """One dense row over every variable (> TABLE_ARITY of them: LRA + ascending search)."""
    rng = np.random.default_rng(3000 + i)
    return dict(seed=4000 + i, n_vars=int(rng.integers(TABLE_ARITY + 1, 13)), n_rows=int(rng.integers(1, 5)),
                wide_rows=1, gamma=float(rng.choice([0.0, 0.5, 0.75, 0.9, 0.6])), style="dyadic" if i % 3 == 0 else "normal", max_narrow=4)


CASES = [_narrow_case(i) for i in range(20)] + [_wide_case(i) for i in range(10)]
_CACHE: dict[int, tuple] = {}


def _case(index: int):
    if index not in _CACHE:
        problem = ref.random_problem(**CASES[index])
        _CACHE[index] = (problem, ref.ref_minimum(problem))
    return _CACHE[index]


def _is_wide(problem) -> bool:
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    return any(len(coef) > TABLE_ARITY for coef, _ in rows)


def test_random_cases_cover_both_encodings_and_nontrivial_optima():
    wide = [_is_wide(_case(i)[0]) for i in range(len(CASES))]
    optima = [_case(i)[1][0] for i in range(len(CASES))]
    assert all(k is not None for k in optima)  # feasible by construction
    assert sum(wide) >= 8 and sum(not w for w in wide) >= 15
    assert sum(k >= 2 for k, w in zip(optima, wide) if w) >= 5  # the ascending search has work to do
    assert sum(k >= 2 for k, w in zip(optima, wide) if not w) >= 5
    # some narrow rows really read more than 4 variables (still clauses)
    widths = [len(coef) for i in range(20) for coef, _ in collapsed_rows(_case(i)[0], np.arange(_case(i)[0].n_constraints))]
    assert max(widths) > 4 and max(widths) <= TABLE_ARITY


def _check_optimal(sol, problem, k, backend):
    assert sol.status == "optimal", (sol.status, sol.proof)
    assert sol.proven_optimal
    assert sol.backend == backend
    assert sol.objective == k
    assert sol.mask is not None and sol.mask.dtype == bool and sol.mask.shape == (problem.n_vars,)
    assert int(sol.mask.sum()) == sol.objective
    assert sol.certificate is not None and sol.certificate.valid
    assert ref.ref_valid(problem, sol.mask)
    assert sol.lower_bound == sol.objective


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index", range(len(CASES)))
def test_solve_matches_brute_force(index, backend):
    problem, (k, _) = _case(index)
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    _check_optimal(sol, problem, k, backend)


def test_wide_rows_take_the_ascending_cardinality_path(monkeypatch):
    calls = []
    original = z3_backend.ascend

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(z3_backend, "ascend", spy)
    n_wide = 0
    for index in range(len(CASES)):
        problem, (k, _) = _case(index)
        if not _is_wide(problem):
            continue
        n_wide += 1
        before = len(calls)
        sol = solve(problem, backend="z3", timeout=TIMEOUT)
        _check_optimal(sol, problem, k, "z3")
        assert len(calls) > before  # the dense row is LRA, searched by ascending cardinality
    assert n_wide >= 8


# --------------------------------------------------------------------------- infeasible


@pytest.mark.parametrize("backend", BACKENDS)
def test_row_reading_no_variable_that_fails_is_infeasible(backend):
    # row 0 is fine, row 1 reads only an ungrouped input whose value is negative
    W = [[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]
    problem = ref.make_problem(W, [1.0, 1.0, -1.0], [0.0, 0.0, 0.0], [0, 1, -1], 0.25)
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    assert sol.status == "infeasible" and sol.mask is None and sol.objective is None
    assert not sol.proven_optimal
    assert ref.ref_minimum(problem)[0] is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_row_with_zero_bias_is_infeasible(backend):
    # an empty row with bias 0: 0 > gamma * 0 is false (strict)
    W = [[1.0, 0.0], [0.0, 0.0]]
    problem = ref.make_problem(W, [1.0, 1.0], [0.0, 0.0], [0, 1], 0.5)
    assert solve(problem, backend=backend, timeout=TIMEOUT).status == "infeasible"
    # ... and with a positive bias it is satisfied by every mask: only row 0 needs m0
    problem = ref.make_problem(W, [1.0, 1.0], [0.0, 0.0], [0, 1], 0.5, bias=[0.0, 0.5])
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    _check_optimal(sol, problem, 1, backend)
    assert sol.mask.tolist() == [True, False]


@pytest.mark.parametrize("backend", BACKENDS)
def test_component_no_mask_satisfies_is_infeasible(backend):
    # row reads m0: on -> 0 (ties gamma * 0), off -> -1; no mask works. Another
    # component (row 1 over m1) is satisfiable.
    W = [[1.0, 0.0], [0.0, 1.0]]
    problem = ref.make_problem(W, [0.0, 1.0], [-1.0, 0.0], [0, 1], 0.0)
    assert ref.ref_minimum(problem)[0] is None
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    assert sol.status == "infeasible" and sol.mask is None


# --------------------------------------------------------------------------- prove=False


def _closed_by_trivial_bound(problem) -> bool:
    """Every component's optimum is at most its exact trivial bound (1 if the empty mask fails, else 0).

    solve() then knows the optimum without any search: with prove=False this is the
    only way an 'optimal' status is justified."""
    rows = ref.ref_collapsed(problem)
    for comp_rows, _ in ref.ref_components(problem):
        k_c = ref.ref_minimum(problem, comp_rows)[0]
        trivial = 1 if any(rows[i][1] >= 0 for i in comp_rows) else 0
        if k_c is None or k_c > trivial:
            return False
    return True


def test_cases_exercise_prove_false_both_ways():
    closed = [_closed_by_trivial_bound(_case(i)[0]) for i in range(len(CASES))]
    assert sum(not c for c in closed) >= 10


@pytest.mark.parametrize("index", range(len(CASES)))
def test_highs_without_proof_never_claims_unproven_optimality(index):
    problem, (k, _) = _case(index)
    sol = solve(problem, backend="highs", timeout=TIMEOUT, prove=False)
    assert sol.certificate.valid and ref.ref_valid(problem, sol.mask)
    assert sol.objective == int(sol.mask.sum()) >= k
    assert 0 <= sol.lower_bound <= k  # the bound it reports is a true lower bound
    if _closed_by_trivial_bound(problem):
        # no search is needed; an 'optimal' here is exact, and must be right
        assert sol.status in ("optimal", "feasible")
        if sol.status == "optimal":
            assert sol.objective == k == sol.lower_bound
    else:
        assert sol.status == "feasible", sol.proof
        assert not sol.proven_optimal


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("backend", ["cplex", "", "Z3", "HIGHS", None])
def test_bad_backend_raises(backend):
    problem, _ = _case(0)
    with pytest.raises(ValueError):
        solve(problem, backend=backend)


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -1e-9])
def test_non_positive_timeout_raises(timeout):
    problem, _ = _case(0)
    with pytest.raises(ValueError):
        solve(problem, timeout=timeout)


# --------------------------------------------------------------------------- components


def _block_diagonal(a, b, extra_unused_var: bool = True):
    """a and b side by side: disjoint inputs, variables and rows (and an unread variable)."""
    n_in_a = a.weights.shape[1]
    W = np.zeros((a.n_constraints + b.n_constraints, n_in_a + b.weights.shape[1]))
    W[: a.n_constraints, :n_in_a] = a.weights.toarray()
    W[a.n_constraints:, n_in_a:] = b.weights.toarray()
    group = np.concatenate([a.group, np.where(b.group >= 0, b.group + a.n_vars, -1)])
    n_vars = a.n_vars + b.n_vars + int(extra_unused_var)
    return ref.make_problem(
        W, np.concatenate([a.x, b.x]), np.concatenate([a.baseline, b.baseline]), group, a.gamma,
        bias=np.concatenate([a.bias, b.bias]), names=[f"m_r0_c{j}" for j in range(n_vars)],
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seeds", [(11, 12), (13, 14), (15, 16)])
def test_independent_groups_split_and_add_up(seeds, backend):
    a = ref.random_problem(seeds[0], 5, 3, wide_rows=1, style="normal", gamma=0.75)  # connected
    b = ref.random_problem(seeds[1], 6, 3, wide_rows=1, style="dyadic", gamma=0.75)
    both = _block_diagonal(a, b)
    ka, kb = ref.ref_minimum(a)[0], ref.ref_minimum(b)[0]
    k = ref.ref_minimum(both)[0]
    assert k == ka + kb

    comps, free_rows = split(both)
    assert len(comps) == 2 and len(free_rows) == 0
    parts = sorted((c.vars.tolist(), c.rows.tolist()) for c in comps)
    assert sorted(v for vars_, _ in parts for v in vars_) == list(range(a.n_vars + b.n_vars))
    assert sorted(r for _, rows in parts for r in rows) == list(range(both.n_constraints))
    for vars_, rows in parts:  # each component is one side
        assert set(vars_) <= set(range(a.n_vars)) or set(vars_) >= set(range(a.n_vars, a.n_vars + b.n_vars))
        assert set(rows) <= set(range(a.n_constraints)) or set(rows) <= set(range(a.n_constraints, both.n_constraints))

    sol = solve(both, backend=backend, timeout=TIMEOUT)
    assert sol.components == 2
    _check_optimal(sol, both, ka + kb, backend)
    assert not sol.mask[-1]  # the variable no row reads stays off
    sa, sb = solve(a, backend=backend, timeout=TIMEOUT), solve(b, backend=backend, timeout=TIMEOUT)
    assert sol.objective == sa.objective + sb.objective


# --------------------------------------------------------------------------- float traps


def _float_trap(needed: int):
    """Rows whose float64 form says the empty mask passes while exactly it fails.

    Ungrouped part: [1e16, -1, -1, -1e16, 1] . ones is 1 in float (left to right) but
    exactly -1; each of ``needed`` variables adds exactly 1, so all of them are needed
    (sum of m_j > 1 with needed = 2, > 0 with needed = 1).
    """
    ungrouped = [1e16, -1.0, -1.0, -1e16, 1.0]
    coefs = [1.0] * needed if needed == 2 else [2.0]
    W = np.array([ungrouped + coefs])
    group = [-1] * 5 + list(range(len(coefs)))
    return ref.make_problem(W, np.ones(W.shape[1]), np.zeros(W.shape[1]), group, 0.0)


@pytest.mark.parametrize("needed", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_float_linear_form_is_not_trusted(needed, backend):
    problem = _float_trap(needed)
    k = ref.ref_minimum(problem)[0]
    assert k == needed
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    _check_optimal(sol, problem, needed, backend)


def test_float_trap_without_proof_stays_honest():
    problem = _float_trap(2)
    sol = solve(problem, backend="highs", timeout=TIMEOUT, prove=False)
    assert sol.status == "feasible"
    assert sol.certificate.valid and sol.objective == 2 and sol.lower_bound <= 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_optimum(backend):
    # every row already holds with every variable off
    problem = ref.make_problem([[1.0, 1.0, 1.0]], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [-1, 0, 1], 0.5)
    assert ref.ref_minimum(problem)[0] == 0
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    _check_optimal(sol, problem, 0, backend)
    assert not sol.mask.any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_overflow_in_linear_form(backend):
    # 1e200 * 1e200 is inf in float64 (the HiGHS form); the exact optimum is 3
    W = [[1e200, 1e200, -1e200, 1.0], [0.0, 1e-200, 1e-200, 0.0]]
    problem = ref.make_problem(W, [1e200, 1e200, 1e200, 1.0], [0.0] * 4, [0, 1, 2, -1], 0.5)
    assert ref.ref_minimum(problem)[0] == 3
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    _check_optimal(sol, problem, 3, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_timeouts_stay_sound(backend):
    """Whatever a tiny deadline leaves, the reported bounds sandwich the true optimum."""
    for seed in range(6):
        problem = ref.random_problem(900 + seed, 12, 4, wide_rows=1, gamma=0.75)
        k, _ = ref.ref_minimum(problem)
        for timeout in (1e-6, 1e-3):
            sol = solve(problem, backend=backend, timeout=timeout)
            assert sol.status in ("optimal", "feasible", "unknown")
            if sol.status == "optimal":
                assert sol.objective == k == sol.lower_bound
            if sol.status in ("optimal", "feasible"):
                assert sol.certificate.valid and ref.ref_valid(problem, sol.mask)
                assert sol.lower_bound <= k <= sol.objective


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_shapes(backend):
    # no rows at all: the empty mask is optimal
    problem = ref.make_problem(np.zeros((0, 2)), [1.0, 1.0], [0.0, 0.0], [0, 1], 0.0)
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    _check_optimal(sol, problem, 0, backend)
    # a variable whose inputs do not change (x == baseline): coefficient 0
    problem = ref.make_problem([[1.0, 2.0]], [1.0, 1.0], [1.0, 0.0], [0, -1], 0.5)
    _check_optimal(solve(problem, backend=backend, timeout=TIMEOUT), problem, 0, backend)
    problem = ref.make_problem([[1.0, -2.0]], [1.0, 1.0], [1.0, 0.0], [0, -1], 0.5)
    assert solve(problem, backend=backend, timeout=TIMEOUT).status == "infeasible"


@pytest.mark.parametrize("backend", ["auto", "highs", "z3"])
def test_problem_without_mask_variables(backend):
    # every input ungrouped, the row holds: the empty mask (of zero variables) is optimal
    problem = ref.make_problem([[1.0, 2.0]], [1.0, 1.0], [0.0, 0.0], [-1, -1], 0.0, names=[])
    sol = solve(problem, backend=backend, timeout=TIMEOUT)
    assert sol.status == "optimal" and sol.objective == 0 and sol.certificate.valid
