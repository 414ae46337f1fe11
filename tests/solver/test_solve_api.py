"""Solution's named constructors, SolveOptions, the backend aliases, and the refactored
``solve`` against answers recorded from the pre-refactor state machine."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from smug.events import Improved
from smug.solver import backends
from smug.solver.network_solve import NETWORK_BACKENDS
from smug.solver.solve import (BACKENDS, CERTIFY_RESERVE, EXACT_SHARE, HIGHS_SHARE, STATUSES, Solution,
                               SolveOptions, solve)
from smug.solver.z3_backend import (MAXSAT_ENGINE, TABLE_ARITY, Z3Options, blocking_clauses, clause_holds,
                                    row_holds, threshold_clauses)
import _reference as ref  # tests/solver/_reference.py, on sys.path via tests/conftest.py

TIMEOUT = 30.0

# --------------------------------------------------------------------------- named constructors


def _mask(bits) -> np.ndarray:
    return np.array(bits, dtype=bool)


def test_optimal_constructor_takes_objective_and_bound_from_the_mask():
    mask = _mask([1, 0, 1, 1, 0])
    sol = Solution.optimal(mask, "z3", "proof", None, components=2, timings={"total": 1.0}, stats={"a": 1})
    assert sol.status == "optimal" and sol.proven_optimal
    assert sol.objective == sol.lower_bound == int(mask.sum()) == 3
    assert isinstance(sol.objective, int) and isinstance(sol.lower_bound, int)
    assert sol.mask is mask and sol.backend == "z3" and sol.proof == "proof" and sol.certificate is None
    assert sol.components == 2 and sol.timings == {"total": 1.0} and sol.stats == {"a": 1}


def test_feasible_constructor_keeps_the_given_lower_bound():
    mask = _mask([1, 1, 0, 1])
    sol = Solution.feasible(mask, 1, "highs", "not proven", None)
    assert sol.status == "feasible" and not sol.proven_optimal
    assert sol.objective == int(mask.sum()) == 3 and sol.lower_bound == 1
    assert sol.components == 0 and sol.timings == {} and sol.stats == {}


def test_infeasible_constructor_has_no_mask():
    sol = Solution.infeasible("auto", "unsat", components=4)
    assert sol.status == "infeasible" and not sol.proven_optimal
    assert sol.mask is None and sol.objective is None and sol.certificate is None
    assert sol.lower_bound == 0 and sol.components == 4 and sol.proof == "unsat"


def test_unknown_constructor_keeps_bound_and_certificate():
    sol = Solution.unknown("enum", "out of time")
    assert (sol.status, sol.mask, sol.objective, sol.lower_bound, sol.certificate) == ("unknown", None, None, 0, None)
    marker = object()
    sol = Solution.unknown("enum", "bad", 5, marker, timings={"total": 2.0})
    assert sol.lower_bound == 5 and sol.certificate is marker and sol.timings == {"total": 2.0}


def test_constructors_do_not_share_default_dicts():
    a, b = Solution.unknown("z3", "x"), Solution.unknown("z3", "y")
    a.timings["total"] = 1.0
    assert b.timings == {} and a.stats is not b.stats


def test_every_status_has_a_constructor():
    made = [Solution.optimal(_mask([1]), "z3", "", None), Solution.feasible(_mask([1]), 0, "z3", "", None),
            Solution.infeasible("z3", ""), Solution.unknown("z3", "")]
    assert [s.status for s in made] == list(STATUSES)


# --------------------------------------------------------------------------- registry and options


def test_backend_lists_come_from_the_registry():
    assert BACKENDS == backends.FIRST_LAYER
    assert NETWORK_BACKENDS == backends.WHOLE_NETWORK


def test_default_options_are_the_tuned_constants():
    opts = SolveOptions()
    assert (opts.exact_share, opts.highs_share, opts.certify_reserve) == (EXACT_SHARE, HIGHS_SHARE, CERTIFY_RESERVE)
    assert opts.z3 == Z3Options(TABLE_ARITY, True, MAXSAT_ENGINE)
    with pytest.raises(AttributeError):
        opts.exact_share = 0.1  # frozen


def _random_row(rng, n):
    coef = {j: Fraction(int(rng.integers(-6, 7)), 4) for j in range(n)}
    coef = {j: a for j, a in coef.items() if a != 0}
    return coef, Fraction(int(rng.integers(-8, 9)), 4)


@pytest.mark.parametrize("seed", range(20))
def test_blocking_clauses_hold_exactly_when_the_row_does(seed):
    rng = np.random.default_rng(seed)
    coef, r = _random_row(rng, int(rng.integers(0, 6)))
    js = sorted(coef)
    for bits in itertools.product((False, True), repeat=len(js)):
        on = {j for j, b in zip(js, bits) if b}
        holds = row_holds(coef, r, on)
        assert all(clause_holds(c, on) for c in blocking_clauses(coef, r)) == holds
        assert all(clause_holds(c, on) for c in threshold_clauses(coef, r)) == holds


ABLATIONS = [
    SolveOptions(z3=Z3Options(table_arity=8, minimal_cnf=False, maxsat_engine="maxres")),
    SolveOptions(z3=Z3Options(minimal_cnf=False)),
    SolveOptions(z3=Z3Options(maxsat_engine="maxres")),
    SolveOptions(z3=Z3Options(table_arity=0)),  # every row LRA
    SolveOptions(exact_share=0.0, highs_share=1.0, certify_reserve=0.0),
]


@pytest.mark.parametrize("options", ABLATIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_options_change_the_route_not_the_optimum(options, backend):
    for seed in range(4):
        problem = ref.random_problem(6100 + seed, 6 + seed, 3, wide_rows=seed % 2, max_narrow=5, gamma=0.75)
        k, _ = ref.ref_minimum(problem)
        sol = solve(problem, backend=backend, timeout=TIMEOUT, options=options)
        assert sol.status == "optimal", sol.proof
        assert sol.objective == sol.lower_bound == k
        assert sol.certificate.valid and ref.ref_valid(problem, sol.mask)


# --------------------------------------------------------------------------- same answers as before


def _recorded_problem(index: int):
    """The problems the recorded answers below were taken from."""
    if index >= 40:
        return ref.random_problem(7000 + index - 40, 8, 4, feasible=False)
    n = 4 + index % 9
    return ref.random_problem(5000 + index, n, 2 + index % 5, wide_rows=index % 2,
                              style=["normal", "dyadic"][index % 2], gamma=[0.0, 0.5, 0.75, 0.9][index % 4],
                              max_narrow=min(4 + index % 5, n))


# (backend, prove) -> (status, objective, lower bound, progress (size, lower bound) events), recorded
# from the pre-refactor solve() (commit 346fad5) on the problems above
RECORDED = {
    0: {
        ("auto", True): ("optimal", 2, 2, ((3, 1), (2, 2))),
        ("auto", False): ("feasible", 2, 1, ((3, 1), (2, 1))),
        ("highs", True): ("optimal", 2, 2, ((3, 1), (2, 1), (2, 2))),
        ("highs", False): ("feasible", 2, 1, ((3, 1), (2, 1))),
        ("z3", True): ("optimal", 2, 2, ((3, 1), (2, 2))),
        ("z3", False): ("optimal", 2, 2, ((3, 1), (2, 2))),
    },
    6: {  # two components
        ("auto", True): ("optimal", 5, 5, ((7, 2), (5, 5))),
        ("auto", False): ("feasible", 5, 2, ((7, 2), (5, 2))),
        ("highs", True): ("optimal", 5, 5, ((7, 2), (5, 2), (5, 5))),
        ("highs", False): ("feasible", 5, 2, ((7, 2), (5, 2))),
        ("z3", True): ("optimal", 5, 5, ((7, 2), (5, 5))),
        ("z3", False): ("optimal", 5, 5, ((7, 2), (5, 5))),
    },
    7: {  # a wide (LRA) row
        ("auto", True): ("optimal", 4, 4, ((11, 1), (4, 1), (4, 4))),
        ("auto", False): ("feasible", 4, 1, ((11, 1), (4, 1))),
        ("highs", True): ("optimal", 4, 4, ((11, 1), (4, 1), (4, 4))),
        ("highs", False): ("feasible", 4, 1, ((11, 1), (4, 1))),
        ("z3", True): ("optimal", 4, 4, ((11, 1), (4, 4))),
        ("z3", False): ("optimal", 4, 4, ((11, 1), (4, 4))),
    },
    26: {  # three components
        ("auto", True): ("optimal", 2, 2, ((8, 2), (7, 2), (5, 2), (2, 2))),
        ("auto", False): ("optimal", 2, 2, ((8, 2), (7, 2), (5, 2), (2, 2))),
        ("highs", True): ("optimal", 2, 2, ((8, 2), (7, 2), (5, 2), (2, 2))),
        ("highs", False): ("optimal", 2, 2, ((8, 2), (7, 2), (5, 2), (2, 2))),
        ("z3", True): ("optimal", 2, 2, ((8, 2), (7, 2), (5, 2), (2, 2))),
        ("z3", False): ("optimal", 2, 2, ((8, 2), (7, 2), (5, 2), (2, 2))),
    },
    40: {key: ("infeasible", None, 0, ()) for key in itertools.product(BACKENDS, (True, False))},
}


@pytest.mark.parametrize("index", sorted(RECORDED))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prove", [True, False])
def test_refactored_solve_answers_as_before(index, backend, prove):
    problem = _recorded_problem(index)
    k, _ = ref.ref_minimum(problem)
    events: list[Improved] = []
    sol = solve(problem, backend=backend, timeout=TIMEOUT, prove=prove, progress=events.append)
    status, objective, lower, progress = RECORDED[index][(backend, prove)]
    assert (sol.status, sol.objective, sol.lower_bound) == (status, objective, lower), sol.proof
    assert tuple((e.size, e.lower_bound) for e in events) == progress
    assert all(isinstance(e, Improved) and ref.ref_valid(problem, e.mask) for e in events)
    if k is None:
        assert status == "infeasible"
    else:  # the recorded answers themselves sandwich the brute-force optimum
        assert lower <= k <= objective and (status != "optimal" or objective == k)
        assert ref.ref_valid(problem, sol.mask)


def test_table_arity_option_reaches_z3(monkeypatch):
    import smug.solver.z3_backend as z3_backend

    calls = []
    original = z3_backend.ascend
    monkeypatch.setattr(z3_backend, "ascend", lambda *a, **k: calls.append(1) or original(*a, **k))
    problem = ref.random_problem(6200, 6, 3, max_narrow=3, gamma=0.75)  # narrow rows only: MaxSAT by default
    k, _ = ref.ref_minimum(problem)
    assert solve(problem, backend="z3", timeout=TIMEOUT).objective == k and not calls
    sol = solve(problem, backend="z3", timeout=TIMEOUT, options=SolveOptions(z3=Z3Options(table_arity=0)))
    assert sol.status == "optimal" and sol.objective == k and calls  # every row LRA: cardinality search


def test_every_solver_entry_point_defaults_to_the_one_default_timeout():
    import inspect

    from smug.deadline import DEFAULT_TIMEOUT
    from smug.pipeline.request import ExplainRequest
    from smug.solver.canonical_network import solve_canonical
    from smug.solver.network_solve import solve_network
    from smug.solver.solve import solve

    for fn in (solve, solve_network, solve_canonical):
        assert inspect.signature(fn).parameters["timeout"].default is DEFAULT_TIMEOUT, fn.__name__
    assert ExplainRequest.build(None, "mnist-mlp").timeout == DEFAULT_TIMEOUT
