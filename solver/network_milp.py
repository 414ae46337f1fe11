"""Candidate masks for the whole-network problem from a big-M MILP (HiGHS).

Columns: the mask ``m``, then per layer its pre-activations ``z`` and, for ReLU
layers, activations ``a`` and a binary ``s`` per unstable unit.  Stable units are
fixed by the interval bounds; unstable ones use the standard big-M hull
(``a >= z, a >= 0, a <= z - l (1 - s), a <= u s``).  Floats: answers are candidates
that the caller certifies exactly.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from smug.ir import NetworkProblem
from smug.common import quiet_highs
from smug.solver.highs_backend import MilpResult
from smug.solver.network_bounds import LayerBounds, first_layer_on_mask


def network_milp_model(problem: NetworkProblem, bounds: list[LayerBounds], margin: float = 1e-4):
    """The big-M MILP as a ``highspy.HighsLp`` (columns: m, then per layer z, a and s as in the
    module docstring).  Shared by :func:`solve_network_milp` and the LP/MPS dumps."""
    import highspy

    n_m = problem.n_vars
    cols_lo, cols_hi, integer = [np.zeros(n_m)], [np.ones(n_m)], [np.ones(n_m, bool)]
    offset = n_m
    rows: list[sp.spmatrix] = []
    row_lo: list[np.ndarray] = []
    row_hi: list[np.ndarray] = []
    blocks: list[tuple[int, sp.spmatrix]] = []  # (row offset is implicit) column blocks per row group

    def add_rows(parts: list[tuple[int, sp.spmatrix]], lo: np.ndarray, hi: np.ndarray) -> None:
        blocks.append(parts)  # type: ignore[arg-type]
        row_lo.append(lo)
        row_hi.append(hi)

    A1, c1 = first_layer_on_mask(problem)[:2]  # the first pre-activation as A m + c
    prev = None  # (column offset, width) of the previous layer's output
    for li, (layer, b) in enumerate(zip(problem.layers, bounds)):
        n = layer.weight.shape[0]
        z_off = offset
        cols_lo.append(b.lower)
        cols_hi.append(b.upper)
        integer.append(np.zeros(n, bool))
        offset += n
        eye = sp.identity(n, format="csr")
        if li == 0:
            add_rows([(z_off, eye), (0, -A1)], c1, c1)
        else:
            add_rows([(z_off, eye), (prev[0], -layer.weight)], layer.bias, layer.bias)
        if not layer.relu:
            prev = (z_off, n)
            continue
        a_off = offset
        cols_lo.append(np.maximum(b.lower, 0))
        cols_hi.append(np.maximum(b.upper, 0))
        integer.append(np.zeros(n, bool))
        offset += n
        stable_on = b.lower >= 0
        unstable = np.flatnonzero(b.unstable)
        # a - z = 0 where stable and on; a >= z elsewhere (a already >= 0 by bounds, = 0 when off)
        lo = np.zeros(n)
        hi = np.where(stable_on, 0.0, np.inf)
        off_units = b.upper <= 0
        lo[off_units] = -np.inf
        add_rows([(a_off, eye), (z_off, -eye)], lo, hi)
        if len(unstable):
            s_off = offset
            k = len(unstable)
            cols_lo.append(np.zeros(k))
            cols_hi.append(np.ones(k))
            integer.append(np.ones(k, bool))
            offset += k
            sel = sp.csr_matrix((np.ones(k), (np.arange(k), unstable)), shape=(k, n))
            lb, ub = b.lower[unstable], b.upper[unstable]
            # a - z - lb*s <= -lb ;  a - ub*s <= 0
            add_rows([(a_off, sel), (z_off, -sel), (s_off, sp.diags(-lb, format="csr"))], np.full(k, -np.inf), -lb)
            add_rows([(a_off, sel), (s_off, sp.diags(-ub, format="csr"))], np.full(k, -np.inf), np.zeros(k))
        prev = (a_off, n)
    # output: z_t - z_j >= delta + margin
    z_off, n_out = prev
    t = problem.target
    others = [j for j in range(n_out) if j != t]
    D = sp.csr_matrix((np.r_[np.ones(len(others)), -np.ones(len(others))],
                       (np.r_[np.arange(len(others)), np.arange(len(others))], np.r_[[t] * len(others), others])),
                      shape=(len(others), n_out))
    add_rows([(z_off, D)], np.full(len(others), problem.delta + margin), np.full(len(others), np.inf))

    n_cols = offset
    mats = []
    for parts in blocks:
        h = parts[0][1].shape[0]
        row = sp.csr_matrix((h, n_cols))
        for off, mat in parts:
            mat = sp.csr_matrix(mat)
            pad = sp.hstack([sp.csr_matrix((h, off)), mat, sp.csr_matrix((h, n_cols - off - mat.shape[1]))])
            row = row + pad
        mats.append(row)
    A = sp.vstack(mats).tocsr()
    lo_all, hi_all = np.concatenate(row_lo), np.concatenate(row_hi)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, A.shape[0]
    cost = np.zeros(n_cols)
    cost[:n_m] = 1.0
    lp.col_cost_ = cost
    lp.col_lower_ = np.concatenate(cols_lo)
    lp.col_upper_ = np.concatenate(cols_hi)
    inf = highspy.kHighsInf
    lp.row_lower_ = np.where(np.isfinite(lo_all), lo_all, -inf)
    lp.row_upper_ = np.where(np.isfinite(hi_all), hi_all, inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n_cols, A.shape[0]
    ints = np.concatenate(integer)
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in ints]
    return lp


def solve_network_milp(problem: NetworkProblem, bounds: list[LayerBounds], timeout: float,
                       margin: float = 1e-4) -> MilpResult:
    import highspy

    t0 = time.perf_counter()
    n_m = problem.n_vars
    lp = network_milp_model(problem, bounds, margin)
    h = quiet_highs()
    for key, val in [("time_limit", max(0.01, float(timeout))), ("mip_rel_gap", 0.0),
                     ("mip_abs_gap", 0.0), ("mip_feasibility_tolerance", 1e-9),
                     ("primal_feasibility_tolerance", 1e-9), ("threads", 1)]:
        h.setOptionValue(key, val)
    h.passModel(lp)
    h.run()
    info = h.getInfo()
    mask = None
    if info.primal_solution_status == 2:
        mask = np.asarray(h.getSolution().col_value)[:n_m] > 0.5
    optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return MilpResult(mask, bool(optimal and mask is not None), float(info.mip_dual_bound), time.perf_counter() - t0)
