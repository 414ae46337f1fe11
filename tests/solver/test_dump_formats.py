"""Dumps in every format, read back independently (pysmt, python-sat, HiGHS): the same rows, exactly,
and the same optimum as smug's solver and the brute-force reference."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction

import numpy as np
import pytest
import z3

import _reference as ref  # tests/solver/_reference.py
from smug.debugging import read_dump
from smug.debugging.solve import network_run, rc2_minimum
from smug.solver.certificate import certify_network
from smug.solver.dump_formats import write_dump
from smug.solver.exact import collapsed_rows
from smug.solver.network_z3 import first_layer_exact
from smug.solver.smtlib import ConstantRowError, to_smtlib
from smug.solver.solve import solve

CASES = [(521, 4, 3, 0, "normal", 0.5), (502, 6, 4, 0, "dyadic", 0.75), (523, 7, 3, 1, "normal", 0.9),
         (554, 8, 5, 0, "dyadic", 0.0), (536, 5, 4, 0, "wild", 0.25)]


def _meta(problem, kind="first-layer"):
    return {"kind": kind, "model": "test", "target": 0, "params": {}, "n_vars": problem.n_vars,
            "variables": {n: {"block": [0, j], "pixel": [0, j]} for j, n in enumerate(problem.var_names)}}


def _write(tmp_path, problem, fmt, **kw):
    path = tmp_path / f"p.{fmt}"
    kind = "whole-network" if hasattr(problem, "layers") else "first-layer"
    path.write_text(write_dump(problem, fmt, _meta(problem, kind), **kw))
    return path


@pytest.mark.parametrize("case", CASES)
def test_smt2_rows_read_back_by_pysmt_are_the_ir_rows_exactly(tmp_path, case):
    problem = ref.random_problem(case[0], case[1], case[2], wide_rows=case[3], style=case[4], gamma=case[5])
    dump = read_dump(_write(tmp_path, problem, "smt2"))
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    assert [r.name for r in dump.rows] == list(problem.constraint_names)
    for row, (coef, r) in zip(dump.rows, rows):
        assert row.strict and row.r == r
        assert row.coef == {problem.var_names[j]: a for j, a in coef.items()}


@pytest.mark.parametrize("case", [c for c in CASES if c[3] == 0])
def test_wcnf_optimum_equals_smug_and_brute_force(tmp_path, case):
    problem = ref.random_problem(case[0], case[1], case[2], style=case[4], gamma=case[5])
    k, _ = ref.ref_minimum(problem)
    dump = read_dump(_write(tmp_path, problem, "wcnf"))
    mask = rc2_minimum([c for _, c in dump.clauses], dump.variables, float("inf"))
    sol = solve(problem, timeout=30.0)
    assert len(mask) == k == sol.objective
    on = np.array([n in mask for n in problem.var_names])
    assert ref.ref_valid(problem, on)


@pytest.mark.parametrize("fmt", ["lp", "mps"])
@pytest.mark.parametrize("case", CASES[:4])
def test_lp_and_mps_optimum_equals_brute_force(tmp_path, fmt, case):
    import highspy

    problem = ref.random_problem(case[0], case[1], case[2], wide_rows=case[3], style=case[4], gamma=case[5])
    k, _ = ref.ref_minimum(problem)
    path = _write(tmp_path, problem, fmt)
    assert re.fullmatch(r". smug-dump end sha256:[0-9a-f]{64}", path.read_text().splitlines()[-1])
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)  # HiGHS keeps one thread pool per process: smug's solves use one thread
    assert h.readModel(str(path)) == highspy.HighsStatus.kOk
    h.run()
    assert round(h.getInfo().objective_function_value) == k
    assert "floats" in path.read_text()


def test_constant_rows_are_left_out_when_they_hold_and_refused_when_they_fail(tmp_path):
    # row 0 reads only an ungrouped input (constant); row 1 reads the variable
    holds = ref.make_problem([[1.0, 0.0], [0.0, 1.0]], [1.0, 1.0], [0.0, 0.0], [-1, 0], 0.5, bias=[0.0, 0.0])
    text = to_smtlib(holds)
    assert text.count("(assert ") == 1 and "constant rows hold and are left out" in text
    for fmt in ("smt2", "wcnf", "lp"):
        assert len(read_dump(_write(tmp_path, holds, fmt)).variables) >= 1
    # affine form: a constant row with a negative bias fails
    fails = ref.make_problem([[1.0, 0.0], [0.0, 1.0]], [1.0, 1.0], [0.0, 0.0], [-1, 0], 0.5, bias=[-3.0, 0.0])
    for fmt in ("smt2", "wcnf", "lp", "mps"):
        with pytest.raises(ConstantRowError, match="reads no mask variable and fails"):
            write_dump(fails, fmt, _meta(fails))


def test_bound_is_pure_smtlib(tmp_path):
    problem = ref.random_problem(502, 6, 4, style="dyadic", gamma=0.75)
    k, _ = ref.ref_minimum(problem)
    for K, expect in ((k, z3.sat), (k - 1, z3.unsat)):
        text = write_dump(problem, "smt2", _meta(problem), bound=K)
        assert "minimize" not in text and "(assert (<= " in text
        s = z3.Solver()
        s.from_string(text)
        assert s.check() == expect
    assert len(read_dump(_write(tmp_path, problem, "smt2", bound=k)).rows) == problem.n_constraints
    with pytest.raises(ValueError, match="smt2 only"):
        write_dump(problem, "lp", _meta(problem), bound=2)


def test_wide_rows_are_refused_in_wcnf():
    problem = ref.random_problem(525, 20, 2, wide_rows=2, gamma=0.6)
    with pytest.raises(ValueError, match="wcnf needs rows over at most"):
        write_dump(problem, "wcnf", _meta(problem))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_network_smt2_reads_back_exactly_and_runs_like_the_certificate(tmp_path, seed):
    problem = ref.random_network(seed, n_vars=6)
    dump = read_dump(_write(tmp_path, problem, "smt2"))
    from smug.debugging.reader import linear

    first = first_layer_exact(problem)
    defs = {f.arg(0).symbol_name(): f.arg(1) for _, f in dump.statements if f.is_equals()}
    for i, (coef, const) in enumerate(first):
        c, v = linear(defs[f"z0_{i}"])
        assert v == const and c == {problem.var_names[j]: a for j, a in coef.items()}
    for bits in itertools.product([False, True], repeat=problem.n_vars):
        mask = np.array(bits)
        on = {n for n, b in zip(problem.var_names, bits) if b and n in dump.variables}
        assert (network_run(dump, on)[0] is None) == certify_network(problem, mask).valid
    with pytest.raises(ValueError, match="wcnf is written for first-layer and text"):
        write_dump(problem, "wcnf", _meta(problem, "whole-network"))


@pytest.mark.parametrize("fmt", ["lp", "mps"])
def test_network_milp_optimum_equals_brute_force(tmp_path, fmt):
    import highspy

    problem = ref.random_network(2, n_vars=6)
    k = ref.reference_minimum(problem)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)  # HiGHS keeps one thread pool per process: smug's solves use one thread
    h.readModel(str(_write(tmp_path, problem, fmt)))
    h.run()
    assert round(h.getInfo().objective_function_value) == k
