"""The whole-network mask problem in z3 (exact LRA): Bool mask, ``If`` for ReLU.

The first pre-activation is ``sum_j If(m_j, a_j, 0) + c`` with exact rational
coefficients; units that the bounds handed in (interval or CROWN, both rigorous: see
:mod:`smug.solver.network_bounds`) prove stable get no ``If``, so the encoding is exact.  Minimal
masks come from an ascending cardinality search (``AtMost(k)`` for k = lb, lb+1, ...,
a fresh solver each step): the first *sat* is optimal, each *unsat* raises the
proven lower bound.  MNIST optima are 0-4 pixels, so few steps are needed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from smug.ir import MaskProblem, NetworkProblem
from smug.solver.certificate import certify_network
from smug.solver.exact import collapsed_rows
from smug.solver.network_bounds import LayerBounds
from smug.solver.z3_backend import ascend


@dataclass(frozen=True)
class Z3NetworkResult:
    mask: np.ndarray | None
    lower_bound: int
    proven: bool
    seconds: float


def _q(z3, q: Fraction):
    return z3.RealVal(f"{q.numerator}/{q.denominator}")


def first_layer_exact(problem: NetworkProblem) -> list[tuple[dict[int, Fraction], Fraction]]:
    """Exact ``(coefficients, constant)`` of each first pre-activation over the mask."""
    first = problem.layers[0]
    as_rows = MaskProblem(weights=first.weight, bias=first.bias, x=problem.x, baseline=problem.baseline,
                          group=problem.group, gamma=0.0, var_names=problem.var_names)
    # collapsed_rows gives sum_j a_j m_j > r with r = -(masked value with every variable off)
    return [(coef, -r) for coef, r in collapsed_rows(as_rows, np.arange(first.weight.shape[0]))]


class _OutOfTime(Exception):
    """The deadline passed while the constraints were being built."""


def network_constraints(z3, problem: NetworkProblem, bounds: list[LayerBounds], m: dict,
                        deadline: float = float("inf")) -> list:
    first = first_layer_exact(problem)
    h = []
    for coef, const in first:
        terms = [z3.If(m[j], _q(z3, a), z3.RealVal(0)) for j, a in coef.items()]
        h.append(z3.Sum(terms) + _q(z3, const) if terms else _q(z3, const))
    cons = []
    for li, (layer, b) in enumerate(zip(problem.layers, bounds)):
        if time.perf_counter() > deadline:  # big networks take seconds to build: stay within the deadline
            raise _OutOfTime
        if li > 0:
            W = layer.weight.tocsr()
            z = []
            for i in range(W.shape[0]):
                if i % 256 == 0 and time.perf_counter() > deadline:
                    raise _OutOfTime
                lo, hi = W.indptr[i], W.indptr[i + 1]
                terms = [_q(z3, Fraction(float(w))) * h[k] for w, k in zip(W.data[lo:hi], W.indices[lo:hi])]
                z.append(z3.Sum(terms) + _q(z3, Fraction(float(layer.bias[i]))) if terms else
                         _q(z3, Fraction(float(layer.bias[i]))))
            h = z
        if layer.relu:
            out = []
            for i, zi in enumerate(h):
                v = z3.Real(f"a{li}_{i}")
                if b.lower[i] >= 0:
                    cons.append(v == zi)
                elif b.upper[i] <= 0:
                    cons.append(v == 0)
                else:
                    cons.append(v == z3.If(zi > 0, zi, z3.RealVal(0)))
                out.append(v)
            h = out
    t = problem.target
    delta = _q(z3, Fraction(problem.delta))
    cons += [h[t] - h[j] > delta for j in range(len(h)) if j != t]
    return cons


def minimise_network(problem: NetworkProblem, bounds: list[LayerBounds], deadline: float,
                     start: np.ndarray | None = None, lower_bound: int = 0) -> Z3NetworkResult:
    import z3

    t0 = time.perf_counter()
    m = {j: z3.Bool(f"m{j}") for j in range(problem.n_vars)}
    try:
        hard = network_constraints(z3, problem, bounds, m, deadline)
    except _OutOfTime:
        best = None if start is None else np.asarray(start, dtype=bool)
        return Z3NetworkResult(best, lower_bound, False, time.perf_counter() - t0)
    found = {"best": None if start is None else np.asarray(start, dtype=bool)}
    literals = [m[j] for j in range(problem.n_vars)]

    def size() -> float:
        return math.inf if found["best"] is None else int(found["best"].sum())

    def offer(model) -> bool:
        cand = np.array([z3.is_true(model.eval(v, model_completion=True)) for v in literals])
        if not certify_network(problem, cand).valid:
            return False  # never trust a model the exact check rejects
        found["best"] = cand
        return True

    lb = ascend(z3, hard, literals, lower_bound, size, offer, deadline)
    best = found["best"]
    if best is None and lb > problem.n_vars:  # every cardinality refuted: no mask at all
        return Z3NetworkResult(None, lb, True, time.perf_counter() - t0)
    proven = best is not None and int(best.sum()) <= lb
    return Z3NetworkResult(best, lb, proven, time.perf_counter() - t0)
