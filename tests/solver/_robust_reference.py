"""Plain references for the robust-explanation tests (no smug solver code is used here).

A tiny random ReLU network, and robustness decided by a direct z3 encoding over exact
rationals: every ReLU an ``If``, the exact box ``max(lo, x - eps) <= v <= min(hi, x + eps)``
on the free inputs, and the question "some class j with logit[t] - logit[j] <= delta".
Test files load this module by path (see ``_reference.py``)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from smug.ir import DenseLayer, NetworkProblem


def tiny_network(seed: int, n_in: int = 10, hidden: tuple[int, ...] = (6, 5), classes: int = 3,
                 pairs: bool = False) -> NetworkProblem:
    """A random ReLU MLP over ``n_in`` inputs in [0, 1]; one feature per input, or per pair of
    inputs (``pairs``).  Weights are multiples of 1/8 and inputs of 1/16 (short dyadics keep the
    z3 reference fast; the networks are still plain float64 ones)."""
    r = np.random.default_rng(seed)
    sizes = (n_in,) + hidden + (classes,)
    layers = tuple(DenseLayer(sp.csr_matrix(np.round(r.normal(size=(b, a)) * 8) / 8), np.round(r.normal(size=b) * 4) / 16,
                              k < len(sizes) - 2)
                   for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
    x = r.integers(0, 17, n_in) / 16.0
    group = np.arange(n_in) // 2 if pairs else np.arange(n_in)
    names = tuple(f"f{j}" for j in range(int(group.max()) + 1))
    probe = NetworkProblem(layers, x, np.zeros(n_in), group, names, 0)
    return NetworkProblem(layers, x, np.zeros(n_in), group, names, int(np.argmax(probe.forward(x))))


def _q(z3, q: Fraction):
    return z3.RealVal(f"{q.numerator}/{q.denominator}")


def fraction_logits(problem: NetworkProblem, v) -> list[Fraction]:
    h = [Fraction(float(a)) for a in v]
    for layer in problem.layers:
        W = layer.weight.toarray()
        h = [sum((Fraction(float(w)) * a for w, a in zip(row, h)), Fraction(float(b))) for row, b in zip(W, layer.bias)]
        if layer.relu:
            h = [max(a, Fraction(0)) for a in h]
    return h


def in_exact_box(problem: NetworkProblem, fixed, eps: float, v, domain=(0.0, 1.0)) -> bool:
    for p, (xp, vp) in enumerate(zip(problem.x, v)):
        q, w = Fraction(float(xp)), Fraction(float(vp))
        if fixed[problem.group[p]]:
            if w != q:
                return False
            continue
        lo, hi = Fraction(domain[0]), Fraction(domain[1])
        if np.isfinite(eps):
            lo, hi = max(lo, q - Fraction(eps)), min(hi, q + Fraction(eps))
        if not lo <= w <= hi:
            return False
    return True


def is_counterexample(problem: NetworkProblem, fixed, eps: float, v) -> bool:
    """``v`` lies in the box of ``fixed`` and some class reaches the target (exact)."""
    z = fraction_logits(problem, v)
    t = problem.target
    return in_exact_box(problem, fixed, eps, v) and any(
        z[t] - z[j] <= Fraction(problem.delta) for j in range(len(z)) if j != t)


def ref_robust(problem: NetworkProblem, fixed, eps: float, domain=(0.0, 1.0)) -> bool:
    import z3

    s = z3.Solver()
    h = []
    for p, xp in enumerate(problem.x):
        q = Fraction(float(xp))
        if fixed[problem.group[p]]:
            h.append(_q(z3, q))
            continue
        v = z3.Real(f"v{p}")
        lo, hi = Fraction(domain[0]), Fraction(domain[1])
        if np.isfinite(eps):
            lo, hi = max(lo, q - Fraction(eps)), min(hi, q + Fraction(eps))
        s.add(v >= _q(z3, lo), v <= _q(z3, hi))
        h.append(v)
    for layer in problem.layers:
        W = layer.weight.toarray()
        z = [z3.Sum([_q(z3, Fraction(float(w))) * a for w, a in zip(row, h)]) + _q(z3, Fraction(float(b)))
             for row, b in zip(W, layer.bias)]
        h = [z3.If(a > 0, a, z3.RealVal(0)) for a in z] if layer.relu else z
    t = problem.target
    s.add(z3.Or([h[t] - h[j] <= _q(z3, Fraction(problem.delta)) for j in range(len(h)) if j != t]))
    return s.check() == z3.unsat


def robust_family(problem: NetworkProblem, eps: float) -> dict[frozenset, bool]:
    """Robustness of every feature set (monotone: a superset of a robust set is robust)."""
    n = problem.n_vars
    out: dict[frozenset, bool] = {}
    for k in range(n + 1):
        for E in itertools.combinations(range(n), k):
            E = frozenset(E)
            if any(out.get(E - {p}) for p in E):
                out[E] = True
                continue
            fixed = np.zeros(n, bool)
            fixed[list(E)] = True
            out[E] = ref_robust(problem, fixed, eps)
    return out


def ref_min_size(problem: NetworkProblem, eps: float) -> int:
    """The size of a smallest robust feature set (ascending sizes; the full set is robust)."""
    n = problem.n_vars
    for k in range(n + 1):
        for E in itertools.combinations(range(n), k):
            fixed = np.zeros(n, bool)
            fixed[list(E)] = True
            if ref_robust(problem, fixed, eps):
                return k
    raise AssertionError("the full set is not robust")
