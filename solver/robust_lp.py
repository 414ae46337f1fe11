"""Complete margin proofs by branch and bound over ReLU phases, each LP bound made rigorous.

For one class ``j`` the question is ``min z_t - z_j > delta`` over the box.  Every node of the
search fixes the phase of some unstable ReLUs; its LP relaxation (triangle relaxation of the
other unstable units, rigorous pre-activation bounds as column bounds) is solved by HiGHS in
floating point, and its answer is only used through a **safe dual bound** (Neumaier and
Shcherbina, Math. Program. 99, 2004): for *any* row multipliers ``y``, with ``r = c - A^T y``,

    c^T x  >=  sum_i (y_i lo_i if y_i >= 0 else y_i hi_i)  +  sum_k min(r_k l_k, r_k u_k)

for every ``x`` with ``lo <= A x <= hi`` and ``l <= x <= u``.  The right-hand side is computed
with Higham's error bounds (:func:`smug.solver.robust_bounds.rounding_error`) and rounded down,
so a node is closed only on a proven bound; an infeasible node is closed by the same bound with
``c = 0`` and HiGHS' dual ray (a proven bound ``> 0`` proves infeasibility).  Every row is a valid
constraint of the exact network: the affine rows have their exact right-hand sides enclosed in
``[lo, hi]``, the triangle rows use :func:`~smug.solver.robust_bounds.relu_upper_line`.

The LP's input point is an attack candidate at every node; it is believed only through the
verifier's exact replay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from smug.common import quiet_highs
from smug.solver.robust_bounds import Bounds, down, relu_upper_line, rounding_error, up

MAX_NODES = 400


@dataclass(frozen=True)
class Layout:
    """Column offsets of the LP: free inputs, then per layer ``z_k`` and, for ReLU layers, ``a_k``."""

    n_free: int
    z: tuple[int, ...]
    a: tuple[int, ...]  # -1 for the last layer
    n_cols: int


def _sum_bound(terms: np.ndarray) -> float:
    """A rigorous lower bound of the exact sum of the float terms."""
    s = float(np.sum(terms))
    return float(down(down(s - float(rounding_error(len(terms), np.sum(np.abs(terms)))))))


class MarginLP:
    """The LP relaxation of one box (see the module docstring); nodes change only bounds.

    With ``fixing = (d, k)`` the input set is instead ``{x + d s : s in [0, 1]^n, sum (1 - s) <= k}``
    over the free entries (:func:`~smug.solver.robust_bounds.fixing_minimum`): the input columns
    are ``s``, the first rows read ``fl(W_p d_p)`` with each product's rounding added to the
    enclosure of their right-hand side, and one row says ``sum s >= n - k``."""

    def __init__(self, layers, x: np.ndarray, free: np.ndarray, box: tuple[np.ndarray, np.ndarray], bounds: Bounds,
                 fixing: tuple[np.ndarray, int] | None = None):
        self.layers = layers
        self.bounds = bounds
        idx = np.flatnonzero(free)
        nf = len(idx)
        z_off, a_off = [], []
        off = nf
        for layer in layers:
            n = layer.weight.shape[0]
            z_off.append(off)
            off += n
            if layer.relu:
                a_off.append(off)
                off += n
            else:
                a_off.append(-1)
        self.lay = Layout(nf, tuple(z_off), tuple(a_off), off)
        if fixing is None:
            col_lo, col_hi = [box[0][idx]], [box[1][idx]]
        else:
            col_lo, col_hi = [np.zeros(nf)], [np.ones(nf)]
        rows, row_lo, row_hi = [], [], []
        az_rows: list[int] = []  # first row of each ReLU layer's "a - z" block
        for k, layer in enumerate(layers):
            W = layer.weight.tocsr()
            n = W.shape[0]
            l, u = bounds.lower[k], bounds.upper[k]
            col_lo.append(l)
            col_hi.append(u)
            # z_k - W h = b (+ the fixed inputs' part), the exact right-hand side enclosed
            if k == 0 and fixing is None:
                Wf = W[:, idx]
                fixed_x = np.where(free, 0.0, x)
                rhs = W @ fixed_x + layer.bias
                err = rounding_error(W.shape[1] + 1, abs(W) @ np.abs(fixed_x) + np.abs(layer.bias))
                src_off, Wsrc = 0, Wf
            elif k == 0:  # z = W x + b + (W diag(d)) s, every product W_p d_p rounded once
                Wd = sp.csr_matrix(W[:, idx] @ sp.diags(fixing[0][idx]))
                rhs = W @ x + layer.bias
                prod_err = abs(Wd) @ np.ones(nf) * (2 * 2.0**-53) + nf * 2.0**-1072
                err = rounding_error(W.shape[1] + 1, abs(W) @ np.abs(x) + np.abs(layer.bias)) + up(prod_err)
                src_off, Wsrc = 0, Wd
            else:
                rhs = layer.bias.copy()
                err = np.zeros(n)
                src_off, Wsrc = a_off[k - 1], W
            rows.append(self._place([(z_off[k], sp.identity(n, format="csr")), (src_off, -sp.csr_matrix(Wsrc))]))
            row_lo.append(down(rhs - err))
            row_hi.append(up(rhs + err))
            if not layer.relu:
                continue
            col_lo.append(np.maximum(l, 0.0))
            col_hi.append(np.maximum(u, 0.0))
            eye = sp.identity(n, format="csr")
            # a - z >= 0 for every unit (= 0 when the unit is stably on, or split on)
            az_rows.append(sum(r.shape[0] for r in rows))
            rows.append(self._place([(a_off[k], eye), (z_off[k], -eye)]))
            row_lo.append(np.zeros(n))
            row_hi.append(np.where(l >= 0, 0.0, np.inf))
            unst = np.flatnonzero((l < 0) & (u > 0))
            if len(unst):
                s, t = relu_upper_line(l[unst], u[unst])
                sel = sp.csr_matrix((np.ones(len(unst)), (np.arange(len(unst)), unst)), shape=(len(unst), n))
                rows.append(self._place([(a_off[k], sel), (z_off[k], -sp.diags(s) @ sel)]))
                row_lo.append(np.full(len(unst), -np.inf))
                row_hi.append(t)
        if fixing is not None:  # sum s >= n - k
            rows.append(self._place([(0, sp.csr_matrix(np.ones((1, nf))))]))
            row_lo.append(np.array([float(nf - fixing[1])]))
            row_hi.append(np.array([np.inf]))
        self.A = sp.vstack(rows).tocsr()
        self.row_lo = np.concatenate(row_lo)
        self.row_hi = np.concatenate(row_hi)
        self.col_lo = np.concatenate(col_lo)
        self.col_hi = np.concatenate(col_hi)
        self.free_idx = idx
        relu_layers = [k for k, layer in enumerate(layers) if layer.relu]
        self.az_row = dict(zip(relu_layers, az_rows))

    def _place(self, parts) -> sp.csr_matrix:
        """A block of rows over every column: the sum of each ``mat`` placed from column ``off``."""
        h = parts[0][1].shape[0]
        blocks = [(off, sp.coo_matrix(mat)) for off, mat in parts]
        rows = np.concatenate([m.row for _, m in blocks])
        cols = np.concatenate([m.col + off for off, m in blocks])
        vals = np.concatenate([m.data for _, m in blocks])
        return sp.csr_matrix((vals, (rows, cols)), shape=(h, self.lay.n_cols))

    def unstable_units(self) -> list[tuple[int, int]]:
        out = []
        for k, layer in enumerate(self.layers):
            if layer.relu:
                l, u = self.bounds.lower[k], self.bounds.upper[k]
                out += [(k, int(i)) for i in np.flatnonzero((l < 0) & (u > 0))]
        return out

    def node(self, splits: dict[tuple[int, int], bool]):
        """(row_lo, row_hi, col_lo, col_hi) with the phases in ``splits`` imposed (the matrix is
        :attr:`A` at every node): on: ``z >= 0`` and ``a - z <= 0``; off: ``z <= 0`` and ``a <= 0``."""
        col_lo, col_hi = self.col_lo.copy(), self.col_hi.copy()
        row_hi = self.row_hi.copy()
        for (k, i), on in splits.items():
            zc, ac = self.lay.z[k] + i, self.lay.a[k] + i
            if on:
                col_lo[zc] = max(col_lo[zc], 0.0)
                row_hi[self.az_row[k] + i] = 0.0
            else:
                col_hi[zc] = min(col_hi[zc], 0.0)
                col_hi[ac] = 0.0
        return self.row_lo, row_hi, col_lo, col_hi


def safe_bound(c: np.ndarray, A: sp.csr_matrix, row_lo, row_hi, col_lo, col_hi, y: np.ndarray,
               At: sp.csr_matrix | None = None, absAt: sp.csr_matrix | None = None) -> float:
    """A rigorous lower bound of ``c^T x`` over the LP's feasible set from any multipliers ``y``
    (module docstring); ``-inf`` when ``y`` needs a row bound that is infinite (after zeroing
    those multipliers it is still a valid bound)."""
    y = np.where((y > 0) & ~np.isfinite(row_lo), 0.0, y)
    y = np.where((y < 0) & ~np.isfinite(row_hi), 0.0, y)
    rb = np.where(y > 0, row_lo, np.where(y < 0, row_hi, 0.0))
    row_terms = np.where(y != 0, y * rb, 0.0)
    At = sp.csr_matrix(A.T) if At is None else At
    r = c - At @ y
    n_col = int(np.diff(At.indptr).max(initial=0)) + 1
    r_err = rounding_error(n_col, np.abs(c) + (abs(At) if absAt is None else absAt) @ np.abs(y))
    pick = np.where(r >= 0, col_lo, col_hi)
    if not np.all(np.isfinite(pick[r != 0])):
        return -np.inf
    col_terms = np.where(r != 0, r * pick, 0.0)
    cmax = np.maximum(np.abs(col_lo), np.abs(col_hi))
    slack = r_err * cmax * (1 + 4 * 2.0**-53)
    total = np.r_[row_terms, col_terms, -up(slack)]
    return _sum_bound(total)


@dataclass(frozen=True)
class LPAnswer:
    status: str  # "proven", "candidate" (an input point to replay), "unknown"
    point: np.ndarray | None = None  # the free inputs of the LP's solution
    nodes: int = 0


class _WarmLP:
    """One HiGHS instance per class: each node changes only bounds, so the dual simplex starts
    from the previous node's basis.  The first solve, cold, is HiGHS' interior point method with
    crossover (a basis for the nodes after it): 1.3 CPU s where the dual simplex took 17 s on
    the CNN's 15,861 x 12,690 LP, and no slower on small ones."""

    def __init__(self, lp: MarginLP, c: np.ndarray):
        import highspy

        self.hs = highspy
        h = quiet_highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.setOptionValue("solver", "ipm")
        A = lp.A
        model = highspy.HighsLp()
        n_rows, n_cols = A.shape
        model.num_col_, model.num_row_ = n_cols, n_rows
        model.col_cost_ = c
        model.col_lower_ = lp.col_lo
        model.col_upper_ = lp.col_hi
        model.row_lower_ = self._inf(lp.row_lo)
        model.row_upper_ = self._inf(lp.row_hi)
        model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        model.a_matrix_.start_ = A.indptr.astype(np.int32)
        model.a_matrix_.index_ = A.indices.astype(np.int32)
        model.a_matrix_.value_ = A.data.astype(np.float64)
        model.a_matrix_.num_col_, model.a_matrix_.num_row_ = n_cols, n_rows
        h.passModel(model)
        self.h = h
        self.cols = np.arange(n_cols, dtype=np.int32)
        self.rows = np.arange(n_rows, dtype=np.int32)

    def _inf(self, a: np.ndarray) -> np.ndarray:
        return np.clip(a, -self.hs.kHighsInf, self.hs.kHighsInf)

    def run(self, lo, hi, clo, chi, seconds: float = float("inf")):
        """The node's LP, stopped after ``seconds`` (HiGHS then reports the time limit, not optimal)."""
        self.h.changeColsBounds(len(self.cols), self.cols, clo, chi)
        self.h.changeRowsBounds(len(self.rows), self.rows, self._inf(lo), self._inf(hi))
        self.h.setOptionValue("time_limit", float(min(max(seconds, 0.01), self.hs.kHighsInf)))
        self.h.run()
        self.h.setOptionValue("solver", "simplex")  # the next nodes start from this basis
        return self.h


def prove_class(lp: MarginLP, target: int, j: int, delta: float, deadline: float,
                is_counterexample, max_nodes: int = MAX_NODES) -> LPAnswer:
    """Branch and bound on ReLU phases for ``min z_t - z_j > delta``; ``is_counterexample(point)``
    replays an LP input point (and returns True when it is one)."""
    import highspy

    c = np.zeros(lp.lay.n_cols)
    zL = lp.lay.z[-1]
    c[zL + target], c[zL + j] = 1.0, -1.0
    zero = np.zeros_like(c)
    unstable = lp.unstable_units()
    warm = _WarmLP(lp, c)
    A, At = lp.A, sp.csr_matrix(lp.A.T)
    absAt = abs(At)
    stack: list[dict] = [{}]
    nodes = 0
    while stack:
        if nodes >= max_nodes or time.perf_counter() > deadline:
            return LPAnswer("unknown", nodes=nodes)
        splits = stack.pop()
        nodes += 1
        lo, hi, clo, chi = lp.node(splits)
        if np.any(clo > chi):
            continue  # a split against the bounds: the node holds no input at all (exact column bounds)
        h = warm.run(lo, hi, clo, chi, deadline - time.perf_counter())
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            _, ok, ray = h.getDualRay()
            ray = np.asarray(ray, np.float64)
            if ok and max(safe_bound(zero, A, lo, hi, clo, chi, ray, At, absAt),
                          safe_bound(zero, A, lo, hi, clo, chi, -ray, At, absAt)) > 0:
                continue
            return LPAnswer("unknown", nodes=nodes)
        if status != highspy.HighsModelStatus.kOptimal:
            return LPAnswer("unknown", nodes=nodes)
        sol = h.getSolution()
        y = np.asarray(sol.row_dual, np.float64)
        bound = max(safe_bound(c, A, lo, hi, clo, chi, y, At, absAt),
                    safe_bound(c, A, lo, hi, clo, chi, -y, At, absAt))
        if bound > delta:
            continue
        col = np.asarray(sol.col_value, np.float64)
        point = col[:lp.lay.n_free]
        if is_counterexample(point):
            return LPAnswer("candidate", point=point, nodes=nodes)
        # branch on the unsplit unstable unit with the widest triangle gap at the LP point
        best, gap = None, -1.0
        for k, i in unstable:
            if (k, i) in splits:
                continue
            zv, av = col[lp.lay.z[k] + i], col[lp.lay.a[k] + i]
            g = av - max(zv, 0.0) + 1e-9 * (lp.bounds.upper[k][i] - lp.bounds.lower[k][i])
            if g > gap:
                best, gap = (k, i), g
        if best is None:
            return LPAnswer("unknown", nodes=nodes)
        zv = col[lp.lay.z[best[0]] + best[1]]
        first = zv > 0  # explore the LP's side last: its child is popped first
        stack.append({**splits, best: not first})
        stack.append({**splits, best: first})
    return LPAnswer("proven", nodes=nodes)
