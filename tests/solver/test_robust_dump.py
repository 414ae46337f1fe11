"""The robustness question as SMT-LIB2 (z3, exact) and as an LP-format MILP (HiGHS) agrees with
the plain z3 reference on tiny networks, robust sets and not."""

from __future__ import annotations

import numpy as np
import pytest

from _robust_reference import ref_robust, tiny_network
from smug.solver.robust import RobustQuery
from smug.solver.robust_dump import robust_lp, robust_smtlib


def _sets(n: int, seed: int) -> list[np.ndarray]:
    r = np.random.default_rng(seed)
    return [np.ones(n, bool), np.zeros(n, bool)] + [r.random(n) < 0.5 for _ in range(4)]


@pytest.mark.parametrize("seed,eps", [(0, 0.125), (3, 0.3125), (2, float("inf"))])
def test_dumps_answer_the_robustness_question(seed, eps, tmp_path):
    import highspy
    import z3

    problem = tiny_network(seed, n_in=8)
    query = RobustQuery(problem, eps)
    for fixed in _sets(problem.n_vars, seed):
        robust = ref_robust(problem, fixed, eps)
        s = z3.Solver()
        s.from_string(robust_smtlib(query, fixed, header=["test"]))
        assert s.check() == (z3.unsat if robust else z3.sat)
        path = tmp_path / "q.lp"
        path.write_text(robust_lp(query, fixed, header=["test"]))
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        assert h.readModel(str(path)) == highspy.HighsStatus.kOk
        h.run()
        status = h.getModelStatus()
        assert status == (highspy.HighsModelStatus.kInfeasible if robust else highspy.HighsModelStatus.kOptimal)
