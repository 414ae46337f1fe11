"""Knapsack cuts: what every robust explanation of at most ``K`` features must fix, from bounds.

Let ``d`` move every input entry to a point of its box (``x + d`` lies in the exact box when
every feature is free) and ``m`` be the 0/1 vector of a set ``E`` (per entry: its feature is
in ``E``).  The input ``x + d * (1 - m)`` lies in the box of ``E``.  CROWN over the set
``S_K = {x + d * s : s in [0, 1]^n, sum (1 - s) <= K}`` (:func:`~smug.solver.robust_bounds.fixing_minimum`:
every ``E`` of at most ``K`` entries) gives a linear lower bound of ``z_j - z_t`` with input
multipliers ``N`` and, rigorously, its value ``lb0`` at ``x + d``:

    z_j - z_t  >=  lb0 - sum_p (N_p d_p) m_p        on S_K.

When ``E`` is robust the margin ``z_t - z_j`` exceeds ``delta`` at that input, so

    sum_p (N_p d_p) m_p  >  lb0 + delta,

a covering knapsack over the features of ``E``.  It is stored with integer weights (the float
products rounded up, scaled by a power of two, negative ones dropped, each clipped at the
right-hand side), so everything built on it (:func:`lp_bound`) is exact integer arithmetic.
Many cuts (any classes, any directions) hold at once for every robust ``E`` of at most ``K``
features: together they bound the size of ``E`` for the disjunction over all classes, where
each class's bound alone (:func:`~smug.solver.robust_explain.fixing_lower_bound`) sees one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from smug.common import U, UNDERFLOW as ETA
from smug.solver.robust_bounds import back_substitute, fixing_minimum, layer_bounds, up

WEIGHT_BITS = 40  # the largest weight of a cut is below 2**WEIGHT_BITS
CANDIDATE_S = 2.0  # HiGHS seconds per candidate (a feasible point is enough: it is verified anyway)


def group_size(problem) -> int:
    """The most input entries one feature holds."""
    return int(np.bincount(problem.group[problem.group >= 0]).max(initial=1))


@dataclass(frozen=True)
class Cut:
    """``sum_f weights[f] m_f >= rhs`` for every robust ``E`` of at most ``up_to`` features
    (integers; ``weights[f] <= rhs``)."""

    weights: np.ndarray  # int64 per feature, >= 0
    rhs: int
    up_to: int
    beats: int = -1  # the class it is about (display)

    def holds(self, fixed: np.ndarray) -> bool:
        return int(self.weights[np.asarray(fixed, bool)].sum()) >= self.rhs


def knapsack_cut(problem, box: tuple[np.ndarray, np.ndarray], d: np.ndarray, j: int, up_to: int) -> Cut | None:
    """The cut of the module docstring for class ``j`` along ``d`` (``x + d`` exactly in the box of
    no feature fixed), valid for every robust ``E`` of at most ``up_to`` features; None when it says
    nothing (``lb0 + delta < 0``: the point ``x + d`` is not proven a counterexample)."""
    layers = problem.layers
    g = group_size(problem)
    b = layer_bounds(layers, box, minimum=fixing_minimum(problem.x, d, g * up_to))
    spec = np.zeros((1, problem.n_classes))
    spec[0, j], spec[0, problem.target] = 1.0, -1.0
    lb, N = back_substitute(layers, len(layers) - 1, spec, list(b.lower), list(b.upper), box,
                            fixing_minimum(problem.x, d, 0))
    rhs = Fraction(float(lb[0])) + Fraction(problem.delta)
    if rhs < 0:
        return None
    c = N[0] * d
    return _integer_cut(problem, up(c + 2 * U * np.abs(c) + 4 * ETA), rhs, up_to, j)  # >= the exact N_p d_p


def _integer_cut(problem, w: np.ndarray, rhs: Fraction, up_to: int, j: int) -> Cut:
    """``sum_f W_f m_f >= R`` in integers from ``sum_p w_p m_p > rhs`` over input entries (``w`` per
    entry, float; ``rhs`` exact): negative weights dropped, the rest scaled by a power of two and
    rounded up, summed per feature and clipped at ``R``."""
    w = np.where((problem.group >= 0) & (w > 0), w, 0.0)
    top = float(w.max(initial=0.0))
    if top == 0.0:
        return Cut(np.zeros(problem.n_vars, np.int64), 1, up_to, j)  # nothing helps: no E of <= up_to is robust
    shift = WEIGHT_BITS - 1 - math.frexp(top)[1]  # top * 2**shift < 2**(WEIGHT_BITS - 1)
    W = np.ceil(np.ldexp(w, shift)).astype(np.int64)  # exact scaling (but underflow), then rounded up
    W = np.where(w > 0, np.maximum(W, 1), 0)  # a weight that underflowed is still above 0
    weights = np.zeros(problem.n_vars, np.int64)
    grouped = problem.group >= 0
    np.add.at(weights, problem.group[grouped], W[grouped])
    R = math.floor(rhs * (Fraction(2) ** shift)) + 1  # sum W m > rhs * 2**shift, integers
    return Cut(np.minimum(weights, R), R, up_to, j)


def attack_direction(problem, v: np.ndarray, j: int, lo32: np.ndarray, hi32: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """A direction ``d`` (``x + d`` exactly a float32 vertex of the box of no feature fixed) that
    extends the counterexample ``v`` against class ``j``: entries that ``v`` moves go to the end they
    moved towards, the others to the end ``grad`` (of ``z_j - z_t`` at ``v``) points to."""
    x = problem.x
    side = np.where(v != x, v > x, grad > 0)
    end = np.where(side, hi32, lo32)
    return exact_direction(x, np.where(problem.group >= 0, end, x))


def exact_direction(x: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``d = end - x``, with ``d_p = 0`` wherever ``x_p + d_p`` is not exactly ``end_p`` (the
    subtraction's rounding error, by Knuth's TwoSum, is not zero)."""
    x, end = np.asarray(x, np.float64), np.asarray(end, np.float64)
    d = end - x
    back = d - end
    err = (end - (d - back)) + (-x - back)  # exactly end - x - d (round to nearest, no overflow)
    return np.where((err == 0) & np.isfinite(d), d, 0.0)


@dataclass
class CutBound:
    """Knapsack cuts along the directions found so far (each with its class), per size ``K``, and
    the lower bound they prove together with covering rows ``sum_{f in S} m_f >= need`` that hold
    for every robust ``E`` (contrastive sets)."""

    problem: object
    box: tuple[np.ndarray, np.ndarray]
    directions: list[tuple[np.ndarray, int]] = field(default_factory=list)
    _cuts: dict[int, list[Cut | None]] = field(default_factory=dict)

    def cuts(self, K: int, deadline: float = float("inf")) -> list[Cut]:
        """The cuts valid for every robust ``E`` of at most ``K`` features, of every direction (of the
        first ones when the deadline passes: the others wait for a later call)."""
        have = self._cuts.setdefault(K, [])
        for d, j in self.directions[len(have):]:
            if time.perf_counter() >= deadline:
                break
            have.append(knapsack_cut(self.problem, self.box, d, j, K))
        return [c for c in have if c is not None]

    def rows(self, K: int, sets: list[tuple[np.ndarray, int]],
             deadline: float = float("inf")) -> tuple[np.ndarray, np.ndarray]:
        """Integer rows ``A m >= b`` (dense) of the cuts at ``K`` and the covering rows."""
        cuts = self.cuts(K, deadline)
        A = np.zeros((len(cuts) + len(sets), self.problem.n_vars), np.int64)
        b = np.zeros(len(A), np.int64)
        for i, c in enumerate(cuts):
            A[i], b[i] = c.weights, c.rhs
        for i, (s, need) in enumerate(sets, len(cuts)):
            A[i, s], b[i] = 1, need
        return A, b

    def proves(self, K: int, sets: list[tuple[np.ndarray, int]], timeout: float,
               deadline: float = float("inf")) -> bool:
        """True when the rows at ``K`` prove (exact LP duality, :func:`lp_bound`) that no robust ``E``
        has at most ``K`` features."""
        A, b = self.rows(K, sets, deadline)
        if not len(A):
            return False
        if np.any(A.sum(axis=1) < b):
            return True  # a row no set of features meets
        h = master(A, b, False, timeout)
        return lp_bound(A, b, np.asarray(h.getSolution().row_dual, np.float64)) > K

    def bound(self, lower: int, upper: int, sets: list[tuple[np.ndarray, int]], deadline: float) -> int:
        """The largest ``K + 1`` with ``lower <= K < upper`` that :meth:`proves` finds by bisection
        (``lower`` when none): a proven lower bound on the size of every robust ``E``."""
        lo, hi = lower - 1, upper  # proves(lo) known (or vacuous), proves(hi) not asked
        while hi - lo > 1 and time.perf_counter() < deadline:
            mid = (lo + hi) // 2
            if self.proves(mid, sets, max(0.05, min(5.0, deadline - time.perf_counter())), deadline):
                lo = mid
            else:
                hi = mid
        return max(lower, lo + 1)

    def candidate(self, K: int, sets: list[tuple[np.ndarray, int]], timeout: float,
                  deadline: float = float("inf")) -> np.ndarray | None:
        """A set of at most ``K`` features meeting every row at ``K`` (HiGHS MILP, a candidate only:
        its best point within ``timeout``; the cuts computed before ``deadline``), or None."""
        A, b = self.rows(K, sets, deadline)
        if not len(A):
            return None
        h = master(A, b, True, min(timeout, CANDIDATE_S), max_size=K)
        x = np.asarray(h.getSolution().col_value, np.float64)
        if len(x) != self.problem.n_vars:
            return None
        chosen = x > 0.5
        return chosen if chosen.sum() <= K and np.all(A @ chosen.astype(np.int64) >= b) else None


def lp_bound(A: np.ndarray, b: np.ndarray, y: np.ndarray, bits: int = 30) -> int:
    """``ceil`` of a weak-duality bound on ``sum m`` over ``{m in [0, 1]^n : A m >= b}`` from any
    multipliers ``y`` (of the rows scaled to right-hand side 1), in exact integers: with ``z >= 0``
    the multipliers of the integer rows, ``sum m >= sum_i z_i b_i - sum_p max(0, (z^T A)_p - 1)``."""
    if len(A) == 0:
        return 0
    scale = 2 ** (bits + int(np.max(b)).bit_length())
    y = np.clip(np.nan_to_num(np.asarray(y, np.float64)), 0.0, None)
    # z_i = Z_i / 2**bits with Z_i = floor(y_i / b_i * 2**bits)  (exact dyadic multipliers)
    Z = [math.floor(Fraction(float(yi)) * scale / int(bi)) if yi > 0 and bi > 0 else 0 for yi, bi in zip(y, b)]
    rows = [i for i, z in enumerate(Z) if z]
    if not rows:
        return 0
    cols = [0] * A.shape[1]
    for i in rows:
        Zi = Z[i]
        for p in np.flatnonzero(A[i]).tolist():
            cols[p] += Zi * int(A[i, p])
    total = sum(Z[i] * int(b[i]) for i in rows) - sum(max(0, c - scale) for c in cols)
    return max(0, math.ceil(Fraction(total, scale)))


def master(A: np.ndarray, b: np.ndarray, integer: bool, timeout: float, max_size: int | None = None):
    """HiGHS on ``min sum m  s.t.  A m >= b`` (rows scaled to right-hand side 1: the weights span
    many magnitudes), ``sum m <= max_size``: candidates and multipliers for :func:`lp_bound`."""
    from smug.solver.robust_hitting import covering

    S = sp.csr_matrix(A.astype(np.float64) / b.astype(np.float64)[:, None])
    return covering(S, integer, timeout, max_size=max_size, presolve=not integer)  # a candidate keeps its time
