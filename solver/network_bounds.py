"""Bounds of every pre-activation over all masks (the mask is the only variable).

Each input entry is either ``x_p`` or ``baseline_p``, so

* :func:`interval_bounds` propagates boxes through the layers (cheap, loose);
* :func:`crown_bounds` tightens them by linear back-substitution (CROWN, Zhang et
  al. 2018; the DeepPoly relaxation): each pre-activation is bounded by a linear
  function of the mask variables ``m in [0, 1]^n`` obtained by substituting every
  earlier layer, with each unstable ReLU replaced by its triangle-relaxation upper
  line and a 0/identity lower line, then concretised over the box.

Both are sound for the exact semantics: interval bounds are widened by a rigorous
float64 error allowance (zero for exact copies of a unit), CROWN bounds by 1e-9 of the
absolute terms they sum (over 10^6 times the worst rounding of those sums), and the
CROWN bounds are intersected with the interval ones.  They decide which ReLUs are stable
and set the big-M constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from smug.ir import NetworkProblem
from smug.solver.network_exact import exact_preactivations

U = 2.0**-53
CROWN_ALLOWANCE = 1e-9


@dataclass(frozen=True)
class LayerBounds:
    lower: np.ndarray  # pre-activation lower bounds
    upper: np.ndarray

    @property
    def unstable(self) -> np.ndarray:
        return (self.lower < 0) & (self.upper > 0)


def _exact_rows(W: sp.csr_matrix, bias: np.ndarray) -> np.ndarray:
    """Rows computed without rounding: one weight +-2^k and no bias (copies of a unit)."""
    nnz = np.diff(W.indptr)
    one = np.zeros(W.shape[0], bool)
    rows = np.flatnonzero(nnz == 1)
    w = np.abs(W.data[W.indptr[rows]])
    one[rows] = (np.frexp(w)[0] == 0.5) & (bias[rows] == 0)
    return one | ((nnz == 0) & (bias == 0))


def interval_bounds(problem: NetworkProblem) -> list[LayerBounds]:
    grouped = problem.group >= 0
    lo = np.where(grouped, np.minimum(problem.x, problem.baseline), problem.x)
    hi = np.where(grouped, np.maximum(problem.x, problem.baseline), problem.x)
    out = []
    for layer in problem.layers:
        W = layer.weight.tocsr()
        Wp, Wn = W.maximum(0), W.minimum(0)
        zl = Wp @ lo + Wn @ hi + layer.bias
        zu = Wp @ hi + Wn @ lo + layer.bias
        n = np.diff(W.indptr) + 2
        slack = 2 * n * U * (abs(W) @ np.maximum(abs(lo), abs(hi)) + abs(layer.bias)) + 1e-300
        slack[_exact_rows(W, layer.bias)] = 0.0
        zl, zu = zl - slack, zu + slack
        out.append(LayerBounds(zl, zu))
        lo, hi = (np.maximum(zl, 0), np.maximum(zu, 0)) if layer.relu else (zl, zu)
    return out


def first_layer_on_mask(problem: NetworkProblem) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix, np.ndarray]:
    """The first pre-activation as ``A m + c`` over the mask variables (float64), and the
    absolute terms summed in ``A`` and ``c`` (for error allowances)."""
    W = problem.layers[0].weight.tocsr()
    grouped = problem.group >= 0
    cols = np.flatnonzero(grouped)
    P = sp.csr_matrix(((problem.x - problem.baseline)[cols], (cols, problem.group[cols])),
                      shape=(W.shape[1], problem.n_vars))
    fixed = np.where(grouped, problem.baseline, problem.x)
    bias = problem.layers[0].bias
    return (sp.csr_matrix(W @ P), W @ fixed + bias, sp.csr_matrix(abs(W) @ abs(P)), abs(W) @ np.abs(fixed) + np.abs(bias))


def _relaxation(b: LayerBounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ReLU lines ``a_l z <= relu(z) <= a_u z + c_u`` valid on ``[lower, upper]``."""
    lo, up = b.lower, b.upper
    on, unstable = lo >= 0, b.unstable
    span = np.where(unstable, up - lo, 1.0)
    a_u = np.where(unstable, up / span, on.astype(np.float64))
    c_u = np.where(unstable, -lo * up / span, 0.0)
    a_l = np.where(unstable, (up > -lo).astype(np.float64), on.astype(np.float64))
    return a_l, a_u, c_u


def _back_substitute(problem: NetworkProblem, bounds: list[LayerBounds], below: int, lam: sp.csr_matrix,
                     const: np.ndarray, first: tuple, upper: bool) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Substitute layers ``below - 1 .. 0`` into the rows ``lam h_{below-1} + const`` (``h`` the
    outputs of layer ``below - 1``): an upper (or lower) line ``lam' m + const'`` over the mask,
    and the absolute terms summed on the way."""
    A1, c1, A1_abs, c1_abs = first
    lam, const = sp.csr_matrix(lam), np.asarray(const, np.float64).copy()
    mag = np.abs(const)
    for k in range(below - 1, -1, -1):
        if problem.layers[k].relu:
            a_l, a_u, c_u = _relaxation(bounds[k])
            pos, neg = lam.maximum(0), lam.minimum(0)
            big, small = (pos, neg) if upper else (neg, pos)  # the side that takes the upper line
            const = const + big @ c_u
            mag = mag + abs(big) @ np.abs(c_u)
            lam = sp.csr_matrix(big @ sp.diags(a_u) + small @ sp.diags(a_l))
        if k == 0:
            const = const + lam @ c1
            mag = mag + abs(lam) @ c1_abs + np.asarray((abs(lam) @ A1_abs).sum(axis=1)).ravel()
            lam = sp.csr_matrix(lam @ A1)
        else:
            prev = problem.layers[k]
            const = const + lam @ prev.bias
            mag = mag + abs(lam) @ np.abs(prev.bias)
            lam = sp.csr_matrix(lam @ prev.weight)
    return lam, const, mag


def top_sum(lam: sp.csr_matrix, k: int | None, upper: bool, rows_per_block: int = 512) -> np.ndarray:
    """Per row, the largest (``upper``) or smallest value of ``lam . m`` over ``m in [0, 1]^n`` with
    at most ``k`` ones (``None``: no limit): the sum of its ``k`` largest positive (smallest
    negative) entries."""
    side = sp.csr_matrix(lam.maximum(0) if upper else -lam.minimum(0))
    if k is None or k >= side.shape[1]:
        total = np.asarray(side.sum(axis=1)).ravel()
    elif k <= 0:
        total = np.zeros(side.shape[0])
    else:
        total = np.empty(side.shape[0])
        for r0 in range(0, side.shape[0], rows_per_block):
            block = side[r0:r0 + rows_per_block].toarray()
            total[r0:r0 + len(block)] = -np.partition(-block, k - 1, axis=1)[:, :k].sum(axis=1)
    return total if upper else -total


def _concretise(lam: sp.csr_matrix, const: np.ndarray, mag: np.ndarray, upper: bool,
                max_size: int | None = None) -> np.ndarray:
    """The bound of ``lam m + const`` over the masks with at most ``max_size`` variables on
    (``None``: all of ``[0, 1]^n``), widened by the allowance."""
    value = const + top_sum(lam, max_size, upper)
    allowance = CROWN_ALLOWANCE * (mag + np.asarray(abs(lam).sum(axis=1)).ravel())
    return value + allowance if upper else value - allowance


def _constant_units(problem: NetworkProblem, first: tuple) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer: the units no mask variable reaches (structurally) and the exact sign of their
    value (the same for every mask: the value at the empty mask, in exact arithmetic)."""
    reach = np.asarray((first[2] != 0).sum(axis=1)).ravel() > 0
    exact = exact_preactivations(problem.layers, problem.masked_input(np.zeros(problem.n_vars, bool)))
    out = []
    for li, (layer, (N, _)) in enumerate(zip(problem.layers, exact)):
        if li > 0:
            reach = (abs(layer.weight) != 0).astype(np.float64) @ reach.astype(np.float64) > 0
        sign = np.sign(N).astype(np.int64)
        out.append((~reach, sign))
    return out


def crown_bounds(problem: NetworkProblem, interval: list[LayerBounds] | None = None,
                 max_size: int | None = None) -> list[LayerBounds]:
    """Interval bounds tightened by back-substitution and by the exact sign of the units no mask
    variable reaches (see the module docstring).  With ``max_size`` the bounds hold only for masks
    of at most that many variables (each linear bound is concretised over ``sum(m) <= max_size``):
    far tighter when minimal masks are small."""
    interval = interval if interval is not None else interval_bounds(problem)
    first = first_layer_on_mask(problem)
    A1, c1 = first[0], first[1]
    constant = _constant_units(problem, first)
    out: list[LayerBounds] = []
    for li, box in enumerate(interval):
        if li == 0:
            lam, const, mag = A1, c1, first[3]
            lo, up = _concretise(lam, const, mag, False, max_size), _concretise(lam, const, mag, True, max_size)
        else:
            layer = problem.layers[li]
            up = _concretise(*_back_substitute(problem, out, li, layer.weight, layer.bias, first, True), True, max_size)
            lo = _concretise(*_back_substitute(problem, out, li, layer.weight, layer.bias, first, False), False,
                             max_size)
        lo, up = np.maximum(box.lower, lo), np.minimum(box.upper, up)
        fixed, sign = constant[li]
        lo = np.where(fixed & (sign >= 0), np.maximum(lo, 0.0), lo)
        up = np.where(fixed & (sign <= 0), np.minimum(up, 0.0), up)
        out.append(LayerBounds(lo, np.maximum(up, lo)))
    return out


def margin_lines(problem: NetworkProblem, bounds: list[LayerBounds]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper lines of the margins: ``logit[t] - logit[j] <= G[i] . m + d[i]`` for every mask ``m``
    the ``bounds`` hold for (``j = others[i]``, every class but the target), the float allowance
    already added to ``d``.
    A mask of size <= k can only keep the class if ``d[i] + (sum of the k largest positive
    entries of G[i]) > delta`` for every ``i``."""
    last, t = problem.layers[-1], problem.target
    others = np.array([j for j in range(problem.n_classes) if j != t])
    D = sp.csr_matrix((np.r_[np.ones(len(others)), -np.ones(len(others))],
                       (np.r_[np.arange(len(others)), np.arange(len(others))], np.r_[[t] * len(others), others])),
                      shape=(len(others), problem.n_classes))
    first = first_layer_on_mask(problem)
    L = len(problem.layers) - 1
    lam, const = sp.csr_matrix(D @ last.weight), D @ last.bias
    if L == 0:
        lam, const, mag = sp.csr_matrix(D @ first[0]), D @ first[1], abs(D) @ first[3]
    else:
        lam, const, mag = _back_substitute(problem, bounds, L, lam, const, first, True)
    d = const + CROWN_ALLOWANCE * (mag + np.asarray(abs(lam).sum(axis=1)).ravel())
    return lam.toarray(), d, others


def unstable_counts(problem: NetworkProblem, bounds: list[LayerBounds]) -> list[int]:
    """Unstable ReLUs per ReLU layer."""
    return [int(b.unstable.sum()) for b, layer in zip(bounds, problem.layers) if layer.relu]
