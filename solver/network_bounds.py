"""Bounds of every pre-activation over all masks (the mask is the only variable).

Each input entry is either ``x_p`` or ``baseline_p``, so

* :func:`interval_bounds` propagates boxes through the layers (cheap, loose);
* :func:`crown_bounds` tightens them by linear back-substitution (CROWN, Zhang et
  al. 2018; the DeepPoly relaxation): each pre-activation is bounded by a linear
  function of the mask variables ``m in [0, 1]^n`` obtained by substituting every
  earlier layer, with each unstable ReLU replaced by its triangle-relaxation upper
  line and a 0/identity lower line, then concretised over the box.

**Every bound is rigorous for the exact (rational) semantics.**  The arithmetic is float64
with round-to-nearest, and each rounding is accounted for by an a-priori bound (Higham,
*Accuracy and Stability of Numerical Algorithms*, Sec. 3.1): a float dot product of ``n``
terms is off by at most ``gamma_n sum |a_i b_i|`` with ``gamma_n = n u / (1 - n u)``,
``u = 2^-53``, plus ``n 2^-1074`` for underflow.  Back-substitution keeps, per row, the
invariant

    q  <=  lam . h_k + const + err          (upper; ``>= ... - err`` for lower)

where ``lam`` and ``const`` are the floats actually computed and ``err`` a float upper
bound of everything the rounding may have moved.  When ``lam @ W`` cancels large terms
(``|lam| |W|`` far above ``|lam @ W|``), ``err`` grows with ``|lam| |W| |h|``, not with what
is left after the cancellation: the bound widens, it never lies.  ReLU upper lines get an
offset checked at both ends of the interval and rounded up, so each is a true upper line of
``relu`` in exact arithmetic.  The final sum is rounded outward by one ulp.  A bound that
cannot be computed (overflow) is infinite, which every consumer treats as unknown.  The
CROWN bounds are intersected with the interval ones.  They decide which ReLUs are stable,
set the big-M constants and give the margin lines that refute whole mask sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from smug.common import U, UNDERFLOW, gamma
from smug.ir import NetworkProblem
from smug.solver.network_exact import exact_preactivations

SAFETY = 1.0 + 1e-6  # covers the rounding of the error terms themselves (each far below 1e-6 relative)


@dataclass(frozen=True)
class LayerBounds:
    lower: np.ndarray  # pre-activation lower bounds
    upper: np.ndarray

    @property
    def unstable(self) -> np.ndarray:
        return (self.lower < 0) & (self.upper > 0)


def _exact_rows(W: sp.csr_matrix, bias: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Rows whose interval ends are computed without rounding: one weight +-2^k, no bias (copies
    of a unit), and both products at the ends in the normal range (or zero)."""
    nnz = np.diff(W.indptr)
    one = np.zeros(W.shape[0], bool)
    rows = np.flatnonzero(nnz == 1)
    w = np.abs(W.data[W.indptr[rows]])
    col = W.indices[W.indptr[rows]]
    ends = [np.abs(v[col]) * w for v in (lo, hi)]
    normal = np.all([(e == 0) | ((e > 2.0**-1022) & np.isfinite(e)) for e in ends], axis=0)
    one[rows] = (np.frexp(w)[0] == 0.5) & (bias[rows] == 0) & normal
    return one | ((nnz == 0) & (bias == 0))


def _no_nan(lower: np.ndarray, upper: np.ndarray) -> LayerBounds:
    """Bounds with every unknown (NaN from an overflow) made infinite."""
    return LayerBounds(np.where(np.isnan(lower), -np.inf, lower), np.where(np.isnan(upper), np.inf, upper))


def interval_bounds(problem: NetworkProblem) -> list[LayerBounds]:
    """Boxes layer by layer; each end widened by ``2 n u`` of the absolute terms it sums (more
    than ``gamma_n`` and the final rounding) plus an underflow allowance, except in rows computed
    exactly (:func:`_exact_rows`)."""
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
        with np.errstate(over="ignore", invalid="ignore"):
            slack = 2 * n * U * (abs(W) @ np.maximum(abs(lo), abs(hi)) + abs(layer.bias)) + 1e-300
            slack[_exact_rows(W, layer.bias, lo, hi)] = 0.0
            box = _no_nan(zl - slack, zu + slack)
        out.append(box)
        lo, hi = (np.maximum(box.lower, 0), np.maximum(box.upper, 0)) if layer.relu else (box.lower, box.upper)
    return out


def first_layer_on_mask(problem: NetworkProblem) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix, np.ndarray]:
    """The first pre-activation as ``A m + c`` over the mask variables (float64), and the
    absolute terms summed in ``A`` and ``c``: with ``n`` the widest row of the first layer,
    ``|A_exact - A| <= gamma_{n+3} A_abs`` and ``|c_exact - c| <= gamma_{n+2} c_abs`` entrywise
    (``A_abs`` uses ``|x| + |baseline|``, which bounds ``|x - baseline|`` and its rounding)."""
    W = problem.layers[0].weight.tocsr()
    grouped = problem.group >= 0
    cols = np.flatnonzero(grouped)
    shape = (W.shape[1], problem.n_vars)
    P = sp.csr_matrix(((problem.x - problem.baseline)[cols], (cols, problem.group[cols])), shape=shape)
    P_abs = sp.csr_matrix(((abs(problem.x) + abs(problem.baseline))[cols], (cols, problem.group[cols])), shape=shape)
    fixed = np.where(grouped, problem.baseline, problem.x)
    bias = problem.layers[0].bias
    return (sp.csr_matrix(W @ P), W @ fixed + bias, sp.csr_matrix(abs(W) @ P_abs),
            abs(W) @ np.abs(fixed) + np.abs(bias))


@dataclass(frozen=True)
class _FirstLayer:
    """The first layer on the mask (:func:`first_layer_on_mask`) and, per first-layer unit, a
    rigorous bound of its float error summed over every mask variable (``m <= 1``) and the
    magnitude of its terms."""

    A: sp.csr_matrix
    c: np.ndarray
    error: np.ndarray  # |A_exact - A| @ 1 + |c_exact - c|, rounded up
    magnitude: np.ndarray  # |A| @ 1 + |c| (what a product lam @ [A c] sums)
    width: int  # terms of the widest sum in the first layer

    @staticmethod
    def of(problem: NetworkProblem) -> "_FirstLayer":
        A, c, A_abs, c_abs = first_layer_on_mask(problem)
        n = int(np.diff(problem.layers[0].weight.tocsr().indptr).max(initial=0))
        row_abs = np.asarray(A_abs.sum(axis=1)).ravel()
        W = _pattern(problem.layers[0].weight)
        grouped = problem.group >= 0
        fixed = np.where(grouped, problem.baseline, problem.x)
        # products that may underflow, counted from their factors (a product that underflowed to 0 is not
        # stored): W x and W baseline over the masked inputs, W fixed, per unit (times m <= 1)
        products = W @ (grouped * (_nonzero(problem.x) + _nonzero(problem.baseline)) + _nonzero(fixed))
        error = SAFETY * gamma(n + 3) * (row_abs + c_abs) + _underflow(products)
        magnitude = np.asarray(abs(A).sum(axis=1)).ravel() + np.abs(c)
        return _FirstLayer(A, c, error, magnitude, n + 3 + problem.n_vars)


def _magnitude(b: LayerBounds, relu: bool) -> np.ndarray:
    """The largest ``|h|`` of a layer's output under its bounds (post-activation for ReLU)."""
    if relu:
        return np.maximum(b.upper, 0.0)
    return np.maximum(np.abs(b.lower), np.abs(b.upper))


def _relaxation(b: LayerBounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ReLU lines ``a_l z <= relu(z) <= a_u z + c_u`` valid on ``[lower, upper]`` in exact
    arithmetic: ``a_l`` is 0 or 1, and ``c_u`` is at least ``-a_u lower`` and ``(1 - a_u) upper``
    (the line lies above ``relu`` at both ends, hence on the interval), rounded up."""
    lo, up = b.lower, b.upper
    on, unstable = lo >= 0, b.unstable
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        span = np.where(unstable, up - lo, 1.0)
        a_u = np.clip(np.where(unstable, up / span, on.astype(np.float64)), 0.0, 1.0)
        ends = np.maximum(-a_u * lo, (1.0 - a_u) * up)
        c_u = np.where(unstable, np.nextafter(ends * (1 + 4 * U), np.inf), 0.0)
    a_u = np.where(np.isnan(a_u), 1.0, a_u)
    c_u = np.where(np.isnan(c_u), np.inf, c_u)
    a_l = np.where(unstable, (up > -lo).astype(np.float64), on.astype(np.float64))
    return a_l, a_u, c_u


def _row_abs_sum(M: sp.csr_matrix) -> np.ndarray:
    return np.asarray(abs(M).sum(axis=1)).ravel()


def _pattern(M: sp.spmatrix) -> sp.csr_matrix:
    """1 where ``M`` stores an entry: counts products, each of which may underflow by at most
    ``UNDERFLOW`` (a sum never does: subnormal sums are exact)."""
    M = sp.csr_matrix(M)
    return sp.csr_matrix((np.ones(M.nnz), M.indices, M.indptr), shape=M.shape)


def _nonzero(v: np.ndarray) -> np.ndarray:
    return (np.asarray(v) != 0).astype(np.float64)


def _underflow(count: np.ndarray) -> np.ndarray:
    """``UNDERFLOW * count`` rounded up to at least one subnormal where ``count > 0`` (the plain
    product is 0 in float64 below ``count = 0.5``)."""
    count = np.asarray(count, np.float64)
    return np.where(count > 0, np.maximum(UNDERFLOW * count, UNDERFLOW), 0.0)


def _onto_mask(lam: sp.csr_matrix, const: np.ndarray, err: np.ndarray, first: _FirstLayer
               ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Substitute the first layer ``z_0 = A m + c`` into rows ``lam z_0 + const`` (+-``err``)."""
    n = lam.shape[1] + 2
    lam_abs = abs(lam)
    err = err + lam_abs @ first.error + gamma(n + first.width) * (lam_abs @ first.magnitude + np.abs(const))
    per_unit = np.diff(first.A.indptr) + _nonzero(first.c)  # products per first-layer unit (times m <= 1)
    err = err + _underflow(_pattern(lam) @ per_unit)
    return sp.csr_matrix(lam @ first.A), const + lam @ first.c, err


def _back_substitute(problem: NetworkProblem, bounds: list[LayerBounds], below: int, lam: sp.csr_matrix,
                     const: np.ndarray, err: np.ndarray, first: _FirstLayer, upper: bool
                     ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Substitute layers ``below - 1 .. 0`` into the rows ``lam h_{below-1} + const`` (+-``err``;
    ``h`` the outputs of layer ``below - 1``): an upper (or lower) line ``lam' m + const'`` over the
    mask with its rigorous error ``err'`` (the module docstring's invariant)."""
    lam, const, err = sp.csr_matrix(lam), np.asarray(const, np.float64).copy(), np.asarray(err, np.float64)
    for k in range(below - 1, -1, -1):
        layer = problem.layers[k]
        if layer.relu:
            a_l, a_u, c_u = _relaxation(bounds[k])
            pos, neg = lam.maximum(0), lam.minimum(0)
            big, small = (pos, neg) if upper else (neg, pos)  # the side that takes the upper line
            big_abs = abs(big)
            scaled = sp.csr_matrix(big @ sp.diags(a_u))
            reach = np.maximum(np.abs(bounds[k].lower), np.abs(bounds[k].upper))
            with np.errstate(over="ignore", invalid="ignore"):
                n = lam.shape[1] + 2
                err = err + gamma(n) * (big_abs @ np.abs(c_u) + np.abs(const)) + U * (abs(scaled) @ reach)
                # counted from the factors: a product big * a_u that underflowed to 0 is not stored in scaled
                err = err + _underflow(_pattern(big) @ (reach * _nonzero(a_u)) + _pattern(big) @ _nonzero(c_u))
                const = const + big @ c_u
            lam = sp.csr_matrix(scaled + small @ sp.diags(a_l))
        if k == 0:
            return _onto_mask(lam, const, err, first)
        prev, below_bounds = problem.layers[k], bounds[k - 1]
        h_abs = _magnitude(below_bounds, problem.layers[k - 1].relu)
        W_abs = abs(prev.weight)
        n = lam.shape[1] + 2
        lam_abs = abs(lam)
        with np.errstate(over="ignore", invalid="ignore"):
            err = err + gamma(n) * (lam_abs @ (W_abs @ h_abs) + lam_abs @ np.abs(prev.bias) + np.abs(const))
            err = err + _underflow(_pattern(lam) @ (_pattern(prev.weight) @ h_abs + _nonzero(prev.bias)))
            const = const + lam @ prev.bias
        lam = sp.csr_matrix(lam @ prev.weight)
    raise AssertionError("unreachable: the loop ends at the first layer")


def top_sum(lam: sp.csr_matrix, k: int | None, upper: bool, rows_per_block: int = 512) -> np.ndarray:
    """Per row, the largest (``upper``) or smallest value of ``lam . m`` over ``m in [0, 1]^n`` with
    at most ``k`` ones (``None``: no limit): the sum of its ``k`` largest positive (smallest
    negative) entries (in float; the caller bounds the rounding)."""
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


def _slack(lam: sp.csr_matrix, const: np.ndarray, err: np.ndarray) -> np.ndarray:
    """``err`` and the rounding of any float sum of ``const`` and entries of ``lam`` (in any
    order), rounded up: what to add to such a sum to bound the exact line."""
    n = lam.shape[1] + 2
    with np.errstate(over="ignore", invalid="ignore"):
        s = SAFETY * (err + 2 * gamma(n) * (np.abs(const) + _row_abs_sum(lam)))
    return np.where(np.isnan(s), np.inf, s)


def _concretise(lam: sp.csr_matrix, const: np.ndarray, err: np.ndarray, upper: bool,
                max_size: int | None = None) -> np.ndarray:
    """The rigorous bound of the exact line over the masks with at most ``max_size`` variables on
    (``None``: all of ``[0, 1]^n``): the float value widened by its slack, rounded outward."""
    with np.errstate(over="ignore", invalid="ignore"):
        value = const + top_sum(lam, max_size, upper)
        slack = _slack(lam, const, err)
        bound = np.nextafter(value + slack, np.inf) if upper else np.nextafter(value - slack, -np.inf)
        bound = np.where(slack > 0, bound, value)  # no slack: nothing was rounded (a row of zeros)
    return np.where(np.isnan(bound), np.inf if upper else -np.inf, bound)


def _constant_units(problem: NetworkProblem) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer: the units no mask variable reaches (structurally: no weight path from an input
    that differs from its baseline) and the exact sign of their value (the same for every mask:
    the value at the empty mask, in exact arithmetic)."""
    varies = ((problem.group >= 0) & (problem.x != problem.baseline)).astype(np.float64)
    reach = (abs(problem.layers[0].weight) != 0).astype(np.float64) @ varies > 0
    exact = exact_preactivations(problem.layers, problem.masked_input(np.zeros(problem.n_vars, bool)))
    out = []
    for li, (layer, (N, _)) in enumerate(zip(problem.layers, exact)):
        if li > 0:
            reach = (abs(layer.weight) != 0).astype(np.float64) @ reach.astype(np.float64) > 0
        sign = np.sign(N).astype(np.int64)
        out.append((~reach, sign))
    return out


@dataclass(frozen=True)
class BoundContext:
    """What every bound of one problem shares, whatever the mask size: the first layer on the mask
    with its rigorous error, and the units no mask variable reaches with their exact signs (one
    exact forward pass).  Build it once per problem and pass it to :func:`crown_bounds` and
    :func:`margin_lines`."""

    first: _FirstLayer
    constant: list[tuple[np.ndarray, np.ndarray]]

    @staticmethod
    def of(problem: NetworkProblem) -> "BoundContext":
        return BoundContext(_FirstLayer.of(problem), _constant_units(problem))


def crown_bounds(problem: NetworkProblem, interval: list[LayerBounds] | None = None,
                 max_size: int | None = None, context: BoundContext | None = None) -> list[LayerBounds]:
    """Interval bounds tightened by back-substitution and by the exact sign of the units no mask
    variable reaches (see the module docstring).  With ``max_size`` the bounds hold only for masks
    of at most that many variables (each linear bound is concretised over ``sum(m) <= max_size``):
    far tighter when minimal masks are small.  ``context``: :meth:`BoundContext.of` the problem."""
    interval = interval if interval is not None else interval_bounds(problem)
    context = context or BoundContext.of(problem)
    first, constant = context.first, context.constant
    out: list[LayerBounds] = []
    for li, box in enumerate(interval):
        if li == 0:
            lines = {side: (first.A, first.c, first.error) for side in (True, False)}
        else:
            layer = problem.layers[li]
            zero = np.zeros(layer.weight.shape[0])
            lines = {side: _back_substitute(problem, out, li, layer.weight, layer.bias, zero, first, side)
                     for side in (True, False)}
        lo = _concretise(*lines[False], False, max_size)
        up = _concretise(*lines[True], True, max_size)
        lo, up = np.maximum(box.lower, lo), np.minimum(box.upper, up)
        fixed, sign = constant[li]
        lo = np.where(fixed & (sign >= 0), np.maximum(lo, 0.0), lo)
        up = np.where(fixed & (sign <= 0), np.minimum(up, 0.0), up)
        out.append(LayerBounds(lo, np.maximum(up, lo)))
    return out


def margin_lines(problem: NetworkProblem, bounds: list[LayerBounds], context: BoundContext | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper lines of the margins: ``logit[t] - logit[j] <= G[i] . m + d[i]`` for every mask ``m``
    the ``bounds`` hold for (``j = others[i]``, every class but the target), in exact arithmetic.
    ``d`` also covers the rounding of any float sum of ``d[i]`` and entries of ``G[i]``, so a
    caller may sum them in float and compare: a sum ``<= delta`` refutes the masks it covers.
    A row that could not be bounded (overflow) has ``d = inf`` (it refutes nothing).
    A mask of size <= k can only keep the class if ``d[i] + (sum of the k largest positive
    entries of G[i]) > delta`` for every ``i``."""
    last, t = problem.layers[-1], problem.target
    others = np.array([j for j in range(problem.n_classes) if j != t])
    D = sp.csr_matrix((np.r_[np.ones(len(others)), -np.ones(len(others))],
                       (np.r_[np.arange(len(others)), np.arange(len(others))], np.r_[[t] * len(others), others])),
                      shape=(len(others), problem.n_classes))
    first = (context or BoundContext.of(problem)).first
    L = len(problem.layers) - 1
    if L == 0:
        lam, const, err = _onto_mask(D, np.zeros(len(others)), np.zeros(len(others)), first)
    else:
        h_abs = _magnitude(bounds[L - 1], problem.layers[L - 1].relu)
        with np.errstate(over="ignore", invalid="ignore"):
            err = gamma(2) * ((abs(D) @ abs(last.weight)) @ h_abs + abs(D) @ np.abs(last.bias))
        lam, const, err = _back_substitute(problem, bounds, L, sp.csr_matrix(D @ last.weight), D @ last.bias,
                                           err, first, True)
    with np.errstate(over="ignore", invalid="ignore"):
        slack = _slack(lam, const, err)
        d = np.where(slack > 0, np.nextafter(const + slack, np.inf), const)
    G = lam.toarray()
    bad = ~np.isfinite(d) | ~np.all(np.isfinite(G), axis=1)
    G[bad], d[bad] = 0.0, np.inf
    return G, d, others


def unstable_counts(problem: NetworkProblem, bounds: list[LayerBounds]) -> list[int]:
    """Unstable ReLUs per ReLU layer."""
    return [int(b.unstable.sum()) for b, layer in zip(bounds, problem.layers) if layer.relu]
