"""Minimum hitting sets of contrastive sets, with a lower bound that is checked exactly.

The covering program ``min sum m  s.t.  sum_{p in S} m_p >= 1 for every set S`` is solved by
HiGHS (a candidate: it is a float solver), and its LP relaxation gives the lower bound: any
``y >= 0`` with ``sum_{S ni p} y_S <= 1`` for every ``p`` (a fractional packing) proves
``|H| >= sum_S y_S`` for every hitting set ``H`` (weak LP duality).  HiGHS' duals are rounded down
to integers over ``2**30``, scaled so that every column sum is ``<= 1`` in integer arithmetic, and
the bound is ``ceil`` of the exact fraction.  When it stays below the candidate's size, SAT with
a cardinality constraint (:func:`no_hitting_set_of_size`) or RC2 (:func:`rc2_minimum`), both over
integers, can certify the optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from smug.common import quiet_highs

SCALE = 2**30


@dataclass(frozen=True)
class HittingSet:
    chosen: np.ndarray  # bool per element: hits every set (checked)
    lower_bound: int  # proven: every hitting set has at least this many elements


def incidence(sets: list[np.ndarray], n: int) -> sp.csr_matrix:
    rows = np.concatenate([np.full(len(s), i) for i, s in enumerate(sets)])
    cols = np.concatenate(sets)
    return sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(sets), n))


def packing_bound(A: sp.csr_matrix, y: np.ndarray, needs: np.ndarray | None = None) -> int:
    """``ceil(sum y'_S need_S)`` for the packing ``y'`` made from ``y`` (module docstring), exactly."""
    yi = np.floor(np.clip(np.asarray(y, np.float64), 0.0, 1.0) * SCALE).astype(np.int64)
    cols = np.asarray(A.T.astype(np.int64) @ yi).ravel()
    denom = max(SCALE, int(cols.max(initial=0)))
    b = np.ones(len(yi), np.int64) if needs is None else np.asarray(needs, np.int64)
    return math.ceil(Fraction(sum(int(a) * int(c) for a, c in zip(yi, b)), denom))


def covering(A: sp.csr_matrix, integer: bool, timeout: float, start: np.ndarray | None = None, min_size: int = 0,
             needs: np.ndarray | None = None, max_size: int | None = None, presolve: bool = True):
    """HiGHS on ``min sum m  s.t.  A m >= needs`` (default 1), ``min_size <= sum m <= max_size``, ``m`` in
    [0, 1] (or 0/1 with ``integer``, warm-started at ``start``): a float solver, its answers are
    candidates and multipliers for exact bounds.  Without ``presolve`` the time limit holds (HiGHS'
    MIP presolve does not look at it: 8 s past a 0.5 s limit on 300 knapsack rows over 784 columns)."""
    import highspy

    m, n = A.shape
    h = quiet_highs()
    for key, val in [("output_flag", False), ("threads", 1), ("time_limit", max(0.05, float(timeout))),
                     ("mip_rel_gap", 0.0), ("mip_abs_gap", 0.0), ("presolve", "on" if presolve else "off")]:
        h.setOptionValue(key, val)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = np.ones(n)
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.ones(n)
    lp.row_lower_ = np.ones(m) if needs is None else np.asarray(needs, np.float64)
    lp.row_upper_ = np.full(m, highspy.kHighsInf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, m
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n
    h.passModel(lp)
    if min_size > 0 or max_size is not None:  # sum m >= min_size: a size every answer is known to need
        h.addRow(float(min_size), highspy.kHighsInf if max_size is None else float(max_size), n,
                 np.arange(n, dtype=np.int32), np.ones(n))
    if integer and start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(np.asarray(start, np.float64))
        h.setSolution(sol)
    h.run()
    return h


def minimum_hitting_set(sets: list[np.ndarray], n: int, timeout: float, start: np.ndarray | None = None,
                        min_size: int = 0, needs: list[int] | None = None) -> HittingSet:
    """A (candidate-minimum) set with at least ``needs[i]`` (default 1) elements of each of ``sets``
    (index arrays over ``n`` elements) and at least ``min_size`` elements in all, and the proven
    lower bound of the module docstring (of the covering problem without ``min_size``)."""
    if not sets:
        return HittingSet(np.zeros(n, bool), 0)
    A = incidence(sets, n)
    b = np.ones(len(sets), np.int64) if needs is None else np.asarray(needs, np.int64)
    relaxed = covering(A, False, timeout, needs=b)
    y = np.asarray(relaxed.getSolution().row_dual, np.float64)
    bound = max(packing_bound(A, y, b), packing_bound(A, -y, b))
    mip = covering(A, True, timeout, start, min_size, b)
    x = np.asarray(mip.getSolution().col_value, np.float64)
    chosen = x > 0.5 if len(x) == n else np.zeros(n, bool)
    if not np.all(A @ chosen.astype(np.float64) >= b):  # no usable answer: the first elements of each set
        chosen = np.zeros(n, bool)
        for s, k in zip(sets, b):
            chosen[s[:k]] = True
    return HittingSet(chosen, bound)


def no_hitting_set_of_size(sets: list[np.ndarray], n: int, size: int, conflicts: int = 200_000,
                           needs: list[int] | None = None) -> bool:
    """True when SAT (Minicard, integers only) proves that no set with ``needs[i]`` (default 1)
    elements of each of ``sets`` has at most ``size`` elements; False when it finds one or runs out
    of its ``conflicts`` budget."""
    from pysat.solvers import Solver

    if size < 0:
        return True
    with Solver(name="minicard") as solver:
        for i, s in enumerate(sets):
            need = 1 if needs is None else int(needs[i])
            if need <= 1:
                solver.add_clause([int(p) + 1 for p in s])
            else:  # at least need of s: at most len(s) - need of them off
                solver.add_atmost([-(int(p) + 1) for p in s], len(s) - need)
        solver.add_atmost(list(range(1, n + 1)), size)
        solver.conf_budget(conflicts)
        return solver.solve_limited() is False


def rc2_minimum(sets: list[np.ndarray], n: int) -> int:
    """The exact minimum hitting set size (MaxSAT RC2: integers only)."""
    from pysat.examples.rc2 import RC2
    from pysat.formula import WCNF

    w = WCNF()
    for s in sets:
        w.append([int(p) + 1 for p in s])
    for p in range(n):
        w.append([-(p + 1)], weight=1)
    with RC2(w) as solver:
        solver.compute()
        return int(solver.cost)
