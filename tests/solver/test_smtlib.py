"""smug.solver.smtlib.to_smtlib: re-solved by plain z3, it gives the brute-force optimum."""

from __future__ import annotations

import re

import numpy as np
import pytest
import z3

from smug.solver.smtlib import to_smtlib
from smug.solver.solve import solve
import _reference as ref  # tests/solver/_reference.py, on sys.path via tests/conftest.py

# (seed, n_vars, n_rows, wide_rows, style, gamma)
CASES = [
    (521, 4, 3, 0, "normal", 0.5),
    (502, 6, 4, 0, "dyadic", 0.75),
    (523, 7, 3, 1, "normal", 0.9),
    (554, 8, 5, 0, "dyadic", 0.0),
    (525, 10, 2, 1, "normal", 0.6),  # a row over 10 > TABLE_ARITY variables
    (536, 5, 4, 0, "wild", 0.25),  # tiny and huge magnitudes
]


def _z3_optimum(text: str, names) -> tuple[z3.CheckSatResult, np.ndarray | None]:
    o = z3.Optimize()
    o.from_string(text)
    answer = o.check()
    if answer != z3.sat:
        return answer, None
    model = o.model()
    mask = np.array([z3.is_true(model.eval(z3.Bool(n), model_completion=True)) for n in names])
    return answer, mask


@pytest.mark.parametrize("seed,n_vars,n_rows,wide_rows,style,gamma", CASES)
def test_plain_z3_finds_the_same_optimum(seed, n_vars, n_rows, wide_rows, style, gamma):
    problem = ref.random_problem(seed, n_vars, n_rows, wide_rows=wide_rows, style=style, gamma=gamma)
    k, _ = ref.ref_minimum(problem)
    text = to_smtlib(problem)
    answer, mask = _z3_optimum(text, problem.var_names)
    assert answer == z3.sat
    sol = solve(problem, timeout=30.0)
    assert sol.status == "optimal"
    assert int(mask.sum()) == sol.objective == k
    assert ref.ref_valid(problem, mask)  # z3's model is a valid mask of the original problem


def test_cases_have_nontrivial_optima():
    ks = [ref.ref_minimum(ref.random_problem(s, n, r, wide_rows=w, style=st, gamma=g))[0]
          for s, n, r, w, st, g in CASES]
    assert all(k is not None for k in ks) and sum(k >= 2 for k in ks) >= 3, ks


@pytest.mark.parametrize("seed,n_vars,n_rows,wide_rows,style,gamma", CASES[:3])
def test_text_names_variables_and_comments_each_row(seed, n_vars, n_rows, wide_rows, style, gamma):
    problem = ref.random_problem(seed, n_vars, n_rows, wide_rows=wide_rows, style=style, gamma=gamma)
    text = to_smtlib(problem, header=["made by the tests", "second line"])
    lines = text.splitlines()
    assert lines[0] == "; made by the tests" and lines[1] == "; second line"
    declared = re.findall(r"\(declare-const (\S+) Bool\)", text)
    used = sorted({j for coef, _ in ref.ref_collapsed(problem) for j in coef})
    assert declared == [problem.var_names[j] for j in used]
    for name in declared:
        assert re.fullmatch(r"m_r0_c\d+", name)
    for name in problem.constraint_names:
        assert lines.count(f"; {name}") == 1
    # one comment right before each of the row assertions, in row order
    comment_rows = [i for i, line in enumerate(lines) if line.startswith("; neuron_")]
    assert [lines[i][2:] for i in comment_rows] == list(problem.constraint_names)
    assert all(lines[i + 1].startswith("(assert (> ") for i in comment_rows)
    assert sum(line.startswith("(assert ") for line in lines) == problem.n_constraints
    assert "(minimize " in text and "(check-sat)" in text


def test_default_constraint_names():
    problem = ref.make_problem([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], [1.0, 1.0], [0.0, 0.0], [0, 1], 0.5)
    lines = to_smtlib(problem).splitlines()
    for i in range(3):
        assert lines.count(f"; c{i}") == 1


def test_exact_coefficients_survive_the_float_trap():
    # float64 says the empty mask passes; the exact dump needs both variables
    W = np.array([[1e16, -1.0, -1.0, -1e16, 1.0, 1.0, 1.0]])
    problem = ref.make_problem(W, np.ones(7), np.zeros(7), [-1] * 5 + [0, 1], 0.0)
    assert ref.ref_minimum(problem)[0] == 2
    answer, mask = _z3_optimum(to_smtlib(problem), problem.var_names)
    assert answer == z3.sat and mask.tolist() == [True, True]


def test_huge_and_tiny_coefficients_are_written_exactly():
    W = np.array([[1e300, 2.0**-1074, -3e-300]])
    problem = ref.make_problem(W, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0, 1, 2], 0.5)
    text = to_smtlib(problem)
    assert "1" + "0" * 10 in text  # 1e300 as an integer, not in float notation
    assert not re.search(r"\d[eE][+-]?\d", text)  # no float notation anywhere
    answer, mask = _z3_optimum(text, problem.var_names)
    k, _ = ref.ref_minimum(problem)
    assert answer == z3.sat and int(mask.sum()) == k
    assert ref.ref_valid(problem, mask)


def test_infeasible_problem_is_unsat():
    problem = ref.make_problem([[1.0]], [0.0], [-1.0], [0], 0.0)
    assert ref.ref_minimum(problem)[0] is None
    answer, _ = _z3_optimum(to_smtlib(problem), problem.var_names)
    assert answer == z3.unsat


def test_without_objective():
    problem = ref.random_problem(502, 6, 4, style="dyadic", gamma=0.75)
    text = to_smtlib(problem, objective=False)
    assert "minimize" not in text and "check-sat" not in text
    s = z3.Solver()
    s.from_string(text)
    assert s.check() == z3.sat
    model = s.model()
    mask = np.array([z3.is_true(model.eval(z3.Bool(n), model_completion=True)) for n in problem.var_names])
    assert ref.ref_valid(problem, mask)
