"""Candidate masks from a float MILP (HiGHS).

Strict inequalities become ``A m >= rhs - const + margin``.  HiGHS works in floating
point, so its answers are only candidates: the caller certifies them exactly and,
if one fails, calls again with a larger margin (shared/notes/solver-facts.md:
margin 1e-6 at default tolerances returned invalid masks; 1e-4 was sound here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from smug.common import quiet_highs
from smug.ir import LinearForm


@dataclass(frozen=True)
class MilpResult:
    mask: np.ndarray | None  # bool over the variables, None if HiGHS found none
    claimed_optimal: bool
    dual_bound: float
    seconds: float


def milp_model(form: LinearForm, margin: float = 1e-4):
    """The MILP as a ``highspy.HighsLp``: min sum(m) s.t. A m >= rhs - const + margin * max(1, |row|_inf),
    m binary.  Shared by :func:`solve_milp` and the LP/MPS dumps (:mod:`smug.solver.milp_dump`)."""
    import highspy

    A = sp.csr_matrix(form.A)
    n_rows, n = A.shape
    scale = np.maximum(1.0, np.abs(A).max(axis=1).toarray().ravel()) if n_rows else np.ones(0)
    lower = form.rhs - form.const + margin * scale
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = n_rows
    lp.col_cost_ = np.ones(n)
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.ones(n)
    lp.row_lower_ = lower
    lp.row_upper_ = np.full(n_rows, highspy.kHighsInf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = n_rows
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n
    return lp


def solve_milp(form: LinearForm, timeout: float, margin: float = 1e-4, start: np.ndarray | None = None) -> MilpResult:
    """min sum(m) s.t. A m >= rhs - const + margin * max(1, |row|_inf), m binary."""
    import highspy

    t0 = time.perf_counter()
    h = quiet_highs()
    h.setOptionValue("time_limit", max(0.01, float(timeout)))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    h.setOptionValue("threads", 1)
    lp = milp_model(form, margin)
    h.passModel(lp)
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = np.asarray(start, dtype=np.float64)
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    mask = None
    if info.primal_solution_status == 2:  # feasible point available
        mask = np.asarray(h.getSolution().col_value) > 0.5
    optimal = status == highspy.HighsModelStatus.kOptimal
    return MilpResult(mask, bool(optimal and mask is not None), float(info.mip_dual_bound), time.perf_counter() - t0)
