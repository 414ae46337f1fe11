"""The robustness verifier: verdicts against a plain z3 reference, exact replay of counterexamples."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from _robust_reference import is_counterexample, ref_robust, tiny_network
from smug.solver.robust import COUNTEREXAMPLE, ROBUST, RobustQuery, Verifier


@pytest.mark.parametrize("eps", [0.125, 0.05, float("inf")])
def test_verdicts_agree_with_reference(eps):
    problem = tiny_network(5)
    verifier = Verifier(RobustQuery(problem, eps))
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(12):
        fixed = rng.random(problem.n_vars) < 0.5
        verdict = verifier.verify(fixed)
        assert verdict.status in (ROBUST, COUNTEREXAMPLE)
        seen.add(verdict.status)
        assert (verdict.status == ROBUST) == ref_robust(problem, fixed, eps)
        if verdict.status == COUNTEREXAMPLE:
            assert is_counterexample(problem, fixed, eps, verdict.counterexample.input)
            assert verdict.counterexample.input.astype(np.float32).astype(np.float64).tolist() == \
                verdict.counterexample.input.tolist()
    assert verifier.stats.calls == 12


def test_a_runtime_that_disagrees_is_not_believed():
    problem = tiny_network(5)
    keeps = lambda V: np.eye(problem.n_classes)[[problem.target] * len(V)] * 1e9  # noqa: E731
    verdict = Verifier(RobustQuery(problem, float("inf")), runtime=keeps).verify(np.zeros(problem.n_vars, bool))
    assert verdict.status != COUNTEREXAMPLE
    assert not ref_robust(problem, np.zeros(problem.n_vars, bool), float("inf"))


def test_boxes_enclose_the_exact_box():
    problem = tiny_network(2)
    q = RobustQuery(problem, 0.05)
    fixed = np.arange(problem.n_vars) % 3 == 0
    lo_x, hi_x = q.exact_box(fixed)
    lo_o, hi_o = q.outer_box(fixed)
    lo_i, hi_i = q.inner_box32(fixed)
    for a, b, lo, hi, li, hi32 in zip(lo_x, hi_x, lo_o, hi_o, lo_i, hi_i):
        assert Fraction(lo) <= a <= Fraction(float(li)) <= Fraction(float(hi32)) <= b <= Fraction(hi)
    assert q.contains(q.problem.x, fixed)


def test_query_refuses_bad_input():
    problem = tiny_network(0)
    with pytest.raises(ValueError, match="epsilon"):
        RobustQuery(problem, -0.1)
    with pytest.raises(ValueError, match="outside the domain"):
        RobustQuery(problem, 0.1, domain=(0.5, 1.0))
