"""Rigorous bounds of a ReLU network (:class:`~smug.ir.DenseLayer` chain) over an input box.

Every bound here holds for the *exact rational* network on every input of the box,
although it is computed in float64.  Each rounded dot product ``s = sum_i a_i b_i``
of ``n`` terms carries Higham's a-priori bound (Accuracy and Stability of Numerical
Algorithms, Eq. 3.5, any summation order, FMA included)

    |fl(s) - s| <= gamma_n * sum_i |a_i| |b_i| + n * eta,    gamma_n = n u / (1 - n u),

with ``u = 2**-53`` and ``eta = 2**-1074`` (underflow).  The bound is applied with a factor 2
(:func:`rounding_error`), which also covers the rounding of the error term itself
(its relative error is a few ``u``, far below 1), and the result is moved one more
float outwards (``np.nextafter``).

Two bounds are computed:

* interval propagation (``W+ l + W- u + b``), for every layer;
* CROWN back-substitution (Zhang et al., NeurIPS 2018, Eq. 5-8) of a batch of linear
  specifications ``C z_L``, which also tightens the intermediate layers when they are
  narrow.  The multipliers are float64 numbers taken as they are; what their rounding
  loses against the exact product is bounded (``|fl(M W) - M W| . max|h|``) and
  subtracted, and each ReLU's upper line ``a <= s z + t`` is checked valid with the
  rounded slope (``t`` is rounded up over both ends of ``[l, u]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from smug.common import U, UNDERFLOW as ETA  # unit roundoff; the error of an underflowing product
from smug.ir import DenseLayer

CROWN_MAX_WIDTH = 2048  # intermediate layers up to this width are tightened by CROWN


def gamma(n: int) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)`` (rounded up by the factor 2 of :func:`rounding_error`)."""
    if n * U >= 0.5:
        raise ValueError("a dot product this long has no useful a-priori error bound")
    return n * U / (1 - n * U)


def rounding_error(n: int, absolute: np.ndarray | float) -> np.ndarray:
    """A rigorous upper bound of ``|fl(s) - s|`` for dot products of ``n`` terms whose computed
    sums of absolute values are ``absolute`` (see the module docstring)."""
    return 2.0 * gamma(n + 2) * np.asarray(absolute, np.float64) + (n + 2) * 4 * ETA


def down(a: np.ndarray) -> np.ndarray:
    return np.nextafter(a, -np.inf)


def up(a: np.ndarray) -> np.ndarray:
    return np.nextafter(a, np.inf)


def upper_sum_nonneg(A, v: np.ndarray) -> np.ndarray:
    """An upper bound of ``A @ v`` for non-negative ``A`` and ``v`` (sums of non-negative terms
    lose at most ``gamma_n`` relatively)."""
    n = A.shape[1] if A.ndim == 2 else A.shape[0]
    s = np.asarray(A @ v, np.float64)
    return up(s + rounding_error(n, s))


def _entries(N) -> tuple[np.ndarray, np.ndarray | tuple]:
    """The stored values of a dense or CSR matrix and each one's column: ``v[cols]`` is the per-column
    vector ``v`` read per entry (for dense, a broadcast view ``v[None, :]``)."""
    if sp.issparse(N):
        return N.data, N.indices
    return N, np.s_[None, :]


def _laid_out(N, values: np.ndarray):
    """``values`` laid out as ``N``'s entries (a dense matrix is its values)."""
    return sp.csr_matrix((values, N.indices, N.indptr), shape=N.shape) if sp.issparse(N) else values


def _with_values(N, values: np.ndarray):
    """:func:`_laid_out`, explicit zeros dropped (the next product skips them)."""
    out = _laid_out(N, values)
    if sp.issparse(out):
        out.eliminate_zeros()
    return out


def _row_sums(N, values: np.ndarray) -> np.ndarray:
    """Per row, the sum of ``values`` laid out as ``N``'s entries."""
    return np.asarray(_laid_out(N, values).sum(axis=1)).ravel()


def _upper_row_sums(N, values: np.ndarray) -> np.ndarray:
    """An upper bound of the row sums of non-negative ``values`` (laid out as ``N``'s entries)."""
    s = _row_sums(N, values)
    return up(s + rounding_error(N.shape[1], s))


def _accumulate(total: np.ndarray, err: np.ndarray, term: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``total + term`` and its rounding added to ``err`` (one addition: ``|fl(a+b) - (a+b)| <= 2u |fl(a+b)|``)."""
    new = total + term
    return new, err + 2 * U * np.abs(new) + 4 * ETA


def _row_terms(W) -> int:
    """The most terms of one row's dot product."""
    if sp.issparse(W):
        W = W.tocsr()
        return int(np.diff(W.indptr).max(initial=0))
    return W.shape[1]


@dataclass(frozen=True)
class Bounds:
    """Rigorous pre-activation bounds ``lower <= z_k <= upper`` of every layer over a box."""

    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]

    def activation(self, k: int, layers: tuple[DenseLayer, ...], box: tuple[np.ndarray, np.ndarray]):
        """Bounds of ``h_k``, the input of layer ``k`` (the box for ``k = 0``)."""
        if k == 0:
            return box
        lo, hi = self.lower[k - 1], self.upper[k - 1]
        if layers[k - 1].relu:
            return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        return lo, hi


def interval_layer(layer: DenseLayer, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous bounds of ``W h + b`` for ``lo <= h <= hi``."""
    Wp, Wn = layer.signed_parts
    n = 2 * _row_terms(layer.matrix) + 1
    with np.errstate(invalid="ignore"):  # a dense zero times an infinite bound is NaN: that bound is infinite
        absolute = Wp @ np.abs(lo) - Wn @ np.abs(hi) + np.abs(layer.bias)
        absolute = np.maximum(absolute, Wp @ np.abs(hi) - Wn @ np.abs(lo) + np.abs(layer.bias))
        err = rounding_error(n, absolute)
        z_lo = Wp @ lo + Wn @ hi + layer.bias
        z_hi = Wp @ hi + Wn @ lo + layer.bias
        z_lo, z_hi = down(down(z_lo - err)), up(up(z_hi + err))
    z_lo, z_hi = np.where(np.isnan(z_lo), -np.inf, z_lo), np.where(np.isnan(z_hi), np.inf, z_hi)
    # A sum whose every term is >= 0 (<= 0) by its signs is exactly >= 0 (<= 0): the rounding
    # allowance must not make such a neuron (a max-pool's pass-through of ReLU outputs) unstable.
    # Each count below is a sum of non-negative floats: zero exactly when no term is there.
    # A NaN bound counts as a term of either sign.
    neg_terms = Wp @ (~(lo >= 0)).astype(np.float64) - Wn @ (~(hi <= 0)).astype(np.float64)
    pos_terms = Wp @ (~(hi <= 0)).astype(np.float64) - Wn @ (~(lo >= 0)).astype(np.float64)
    z_lo = np.where((neg_terms == 0) & (layer.bias >= 0), np.maximum(z_lo, 0.0), z_lo)
    z_hi = np.where((pos_terms == 0) & (layer.bias <= 0), np.minimum(z_hi, 0.0), z_hi)
    return z_lo, z_hi


def relu_upper_line(l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope ``s`` and offset ``t`` with ``relu(z) <= s z + t`` on ``[l, u]`` (``l < 0 < u``), valid
    for the rounded ``s``: ``t`` is rounded up over both ends (the ReLU is convex)."""
    s = u / (u - l)
    t1 = -s * l  # s l + t >= 0
    t1 = up(t1 + 4 * U * np.abs(t1) + 4 * ETA)
    t2 = u - s * u  # s u + t >= u
    t2 = up(t2 + 4 * U * (np.abs(u) + np.abs(s * u)) + 4 * ETA)
    return s, np.maximum(t1, t2)


def box_minimum(N, box: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Rigorous lower bounds of ``min N x`` over the box, per row of ``N`` (dense or CSR)."""
    lo, hi = box
    vals, cols = _entries(N)
    terms = vals * np.where(vals >= 0, lo[cols], hi[cols])
    return down(_row_sums(N, terms) - rounding_error(N.shape[1] + 1, _row_sums(N, np.abs(terms))))


def _times_layer(M, layer: DenseLayer):
    """``M W`` and ``|M| |W|``: CSR when both ``M`` and ``W`` are, dense otherwise."""
    if sp.issparse(M):
        N, A = M @ layer.matrix, abs(M) @ layer.abs_matrix_t.T
        if sp.issparse(N):
            return sp.csr_matrix(N), sp.csr_matrix(A)
        return np.asarray(N), np.asarray(A.toarray() if sp.issparse(A) else A)
    return np.asarray((layer.matrix_t @ M.T).T), np.asarray((layer.abs_matrix_t @ np.abs(M).T).T)


def back_substitute(layers: tuple[DenseLayer, ...], k_top: int, C, bounds_lo: list[np.ndarray],
                    bounds_hi: list[np.ndarray], box: tuple[np.ndarray, np.ndarray],
                    minimum: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CROWN: rigorous lower bounds of ``C z_{k_top}`` over an input set inside the box, and the
    input-level multipliers (rows of ``N``; the box vertex minimising ``N x`` is a natural attack
    point).  The set is the box itself, or the one whose rigorous ``min N x`` is ``minimum(N)``.
    ``C`` is dense or CSR; the multipliers stay CSR while the layers are (a neuron's row of a
    convolution only reaches its receptive field), and ``N`` is returned as ``C`` came.

    ``bounds_lo/hi[k]`` must hold rigorous bounds of ``z_k`` over the set for every ``k < k_top``."""
    M = sp.csr_matrix(C, dtype=np.float64) if sp.issparse(C) else np.asarray(C, np.float64)
    m = M.shape[0]
    const = np.zeros(m)
    err = np.zeros(m)
    for k in range(k_top, -1, -1):
        layer = layers[k]
        n_out = layer.weight.shape[0]
        # M z_k = M b_k + (M W_k) h_{k-1}
        const, err = _accumulate(const, err, np.asarray(M @ layer.bias).ravel())
        err += rounding_error(n_out, np.asarray(abs(M) @ np.abs(layer.bias)).ravel())
        N, N_abs = _times_layer(M, layer)
        if k == 0:
            lo, hi = box
        else:
            lo, hi = bounds_lo[k - 1], bounds_hi[k - 1]
            if layers[k - 1].relu:
                lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        hmax = np.maximum(np.abs(lo), np.abs(hi))
        # |fl(M W) - M W| . hmax, the entries' errors (rounding_error(n_out, |M||W|)) summed in two parts:
        # the relative one over the stored entries, the underflow one over every column (a product
        # that underflowed may have left no entry)
        abs_vals, abs_cols = _entries(N_abs)
        with np.errstate(invalid="ignore"):  # a stored zero of |M||W| adds nothing (0 * inf is NaN): the
            terms = np.where(abs_vals == 0, 0.0, abs_vals * hmax[abs_cols])  # underflow part holds the inf
        scaled = 2.0 * gamma(n_out + 2) * _row_sums(N_abs, terms)
        scaled = scaled + (n_out + 2) * 4 * ETA * upper_sum_nonneg(np.ones(len(hmax)), hmax)
        err += up(scaled + rounding_error(len(hmax) + 2, scaled))
        if k == 0:
            if minimum is None:
                val = box_minimum(N, box)
            else:
                val = minimum(N.toarray() if sp.issparse(N) else N)
            total, err = _accumulate(const, err, val)
            # err is a sum of non-negative terms rounded a few hundred times at most: 1e-10 covers it
            return down(down(total - err * (1 + 1e-10))), N
        if not layers[k - 1].relu:
            raise ValueError("CROWN expects a ReLU after every layer but the last")
        l, u = bounds_lo[k - 1], bounds_hi[k - 1]
        active, inactive = l >= 0, u <= 0
        unstable = ~(active | inactive)
        vals, cols = _entries(N)
        pos = vals >= 0
        up_cols = unstable[cols]
        Mn = np.where(active[cols], vals, 0.0)
        Mn = np.where(up_cols & pos, vals * (u >= -l)[cols], Mn)  # CROWN's adaptive lower line a >= alpha z (exact: 0 or 1)
        if unstable.any():
            s, t = np.ones_like(l), np.zeros_like(l)
            s[unstable], t[unstable] = relu_upper_line(l[unstable], u[unstable])
            neg = up_cols & ~pos
            Ns = vals * s[cols]
            Mn = np.where(neg, Ns, Mn)
            zmax = np.maximum(np.abs(l), np.abs(u))
            # N a >= fl(N s) z + N t - |fl(N s) - N s| |z|;  |fl(p) - p| <= u |fl(p)| + eta
            err += _upper_row_sums(N, np.where(neg, (2 * U * np.abs(Ns) + 4 * ETA) * zmax[cols], 0.0))
            Nt = np.where(neg, vals * t[cols], 0.0)
            const, err = _accumulate(const, err, _row_sums(N, Nt))
            err += rounding_error(N.shape[1] + 1, _row_sums(N, np.abs(Nt)) * (1 + 4 * U))
        M = _with_values(N, Mn)
    raise AssertionError("unreachable")


def layer_bounds(layers: tuple[DenseLayer, ...], box: tuple[np.ndarray, np.ndarray],
                 crown_max_width: int = CROWN_MAX_WIDTH,
                 minimum: Callable[[np.ndarray], np.ndarray] | None = None) -> Bounds:
    """Rigorous pre-activation bounds of every layer over the box (or the set inside it that
    ``minimum`` describes, see :func:`back_substitute`): intervals, tightened by CROWN (after the
    first layer, unless the set is not the box) for the neurons the intervals leave unstable, when
    there are at most ``crown_max_width`` of them (every neuron of the last layer).  A neuron the
    intervals prove stable keeps them: CROWN's relaxation of it is exact whatever its bounds."""
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    lo, hi = box
    for k, layer in enumerate(layers):
        z_lo, z_hi = interval_layer(layer, lo, hi)
        rows = np.flatnonzero((z_lo < 0) & (z_hi > 0)) if layer.relu else np.arange(len(z_lo))
        if (k > 0 or minimum is not None) and 0 < len(rows) <= crown_max_width:
            signs = np.concatenate([np.ones(len(rows)), -np.ones(len(rows))])  # rows e_i, then -e_i
            at, shape = (np.arange(2 * len(rows)), np.concatenate([rows, rows])), (2 * len(rows), len(z_lo))
            if sp.issparse(layer.matrix):  # CSR rows stay sparse through CSR layers
                C = sp.csr_matrix((signs, at), shape=shape)
            else:
                C = np.zeros(shape)
                C[at] = signs
            c_lo, _ = back_substitute(layers, k, C, lower, upper, box, minimum)
            z_lo[rows] = np.fmax(z_lo[rows], c_lo[:len(rows)])  # a NaN from CROWN keeps the interval bound
            z_hi[rows] = np.fmin(z_hi[rows], -c_lo[len(rows):])
        lower.append(z_lo)
        upper.append(z_hi)
        lo, hi = (np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0)) if layer.relu else (z_lo, z_hi)
    return Bounds(tuple(lower), tuple(upper))


def fixing_minimum(x: np.ndarray, d: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    """``minimum`` for the set ``{x + d * s : s in [0, 1]^n, sum (1 - s) <= k}`` (it holds every
    point that moves all entries by ``d`` but at most ``k``, which stay at ``x``): ``N x + sum_p c_p`` minus the
    ``k`` largest positive ``c_p = N_p d_p`` (a linear function's minimum over that polytope)."""

    def minimum(N: np.ndarray) -> np.ndarray:
        base = N @ x
        c = N * d
        c_err = 2 * U * np.abs(c) + 4 * ETA  # one rounded product each
        full = c.sum(axis=1)
        pos = np.maximum(c, 0.0)
        kk = min(k, c.shape[1])
        top = np.sort(pos, axis=1)[:, c.shape[1] - kk:].sum(axis=1) if kk else np.zeros(len(c))
        val = base + full - top
        n = c.shape[1]
        err = (rounding_error(n, np.abs(N) @ np.abs(x)) + 2 * rounding_error(n, np.abs(c).sum(axis=1))
               + c_err.sum(axis=1) * (1 + 4 * n * U) + rounding_error(3, np.abs(base) + np.abs(full) + np.abs(top)))
        return down(down(val - err))

    return minimum


def margin_matrix(n_classes: int, target: int) -> tuple[np.ndarray, list[int]]:
    """Rows ``e_target - e_j`` for every other class ``j`` (exact: entries 0, 1, -1)."""
    others = [j for j in range(n_classes) if j != target]
    C = np.zeros((len(others), n_classes))
    C[np.arange(len(others)), target] = 1.0
    C[np.arange(len(others)), others] = -1.0
    return C, others


def margin_lower_bounds(layers: tuple[DenseLayer, ...], bounds: Bounds, box: tuple[np.ndarray, np.ndarray],
                        target: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Rigorous lower bounds of ``z_target - z_j`` over the box for every other class ``j``
    (CROWN, and the interval bound when it is better), the input multipliers of each row, and
    the classes ``j`` in row order."""
    L = len(layers) - 1
    C, others = margin_matrix(layers[-1].weight.shape[0], target)
    crown, N = back_substitute(layers, L, C, list(bounds.lower), list(bounds.upper), box)
    interval = down(bounds.lower[L][target] - bounds.upper[L][others])
    interval = down(interval - rounding_error(2, np.abs(bounds.lower[L][target]) + np.abs(bounds.upper[L][others])))
    return np.maximum(crown, interval), N, others
