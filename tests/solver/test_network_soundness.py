"""Issue 31: every bound and every verdict of the whole-network solver is right in exact
arithmetic on networks built to break float bound propagation (``bench/adversarial.py``:
exact 2^10..2^60 cancellations, margins down to 1e-12, ReLUs dead or live at the edge).

The reference is a plain ``fractions.Fraction`` forward over every mask.  ``bench/soundness.py``
runs the same checks over thousands of seeds."""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import pytest

from smug.bench.adversarial import adversarial_network, exact_optimum
from smug.solver.certificate import certify_network
from smug.solver.network_bounds import crown_bounds, interval_bounds, margin_lines
from smug.solver.network_solve import solve_network

BOUND_SEEDS = range(60)
VERDICT_SEEDS = range(60)
SIZES = (5, 6, 7, 8)  # inputs: 32 to 256 masks each for the brute force (bench/soundness.py goes to 12)


def _preactivations(problem, mask) -> list[list[Fraction]]:
    h = [Fraction(float(a)) for a in problem.masked_input(mask)]
    out = []
    for layer in problem.layers:
        W = layer.weight.toarray()
        z = [sum((Fraction(float(w)) * a for w, a in zip(row, h) if w), Fraction(float(b)))
             for row, b in zip(W, layer.bias)]
        out.append(z)
        h = [max(v, Fraction(0)) for v in z] if layer.relu else z
    return out


def _masks(n: int):
    for code in range(2**n):
        yield np.array([(code >> j) & 1 for j in range(n)], bool)


@functools.lru_cache(maxsize=None)
def _network(seed: int):
    return adversarial_network(seed, SIZES[seed % len(SIZES)])


@pytest.mark.parametrize("seed", BOUND_SEEDS)
def test_bounds_and_margin_lines_hold_in_exact_arithmetic(seed):
    p = _network(seed)
    box = interval_bounds(p)
    full = crown_bounds(p, box)
    sized = {k: crown_bounds(p, full, max_size=k) for k in (1, 2)}
    lines = {k: margin_lines(p, b) for k, b in [(None, full), *sized.items()]}
    t = p.target
    for mask in _masks(p.n_vars):
        zs = _preactivations(p, mask)
        cover = [(None, full)] + [(k, b) for k, b in sized.items() if mask.sum() <= k]
        for k, bounds in cover + [(None, box)]:
            for z, b in zip(zs, bounds):
                assert all(Fraction(float(lo)) <= v <= Fraction(float(up))
                           for v, lo, up in zip(z, b.lower, b.upper)), (seed, k)
        for k, _ in cover:
            G, d, others = lines[k]
            for row, j in enumerate(others):
                line = sum((Fraction(float(g)) for g, on in zip(G[row], mask) if on), Fraction(float(d[row])))
                assert zs[-1][t] - zs[-1][j] <= line, (seed, k)


@functools.lru_cache(maxsize=None)
def _optimum(seed: int):
    return exact_optimum(_network(seed))[0]


@pytest.mark.parametrize("backend", ["auto", "enum", "highs", "z3"])
def test_every_verdict_is_right_in_exact_arithmetic(backend):
    wrong = []
    for seed in VERDICT_SEEDS:
        p, opt = _network(seed), _optimum(seed)
        s = solve_network(p, backend=backend, timeout=30)
        if s.mask is not None:
            assert certify_network(p, s.mask).valid
            z = _preactivations(p, s.mask)[-1]
            assert all(z[p.target] - v > 0 for j, v in enumerate(z) if j != p.target), seed
        if s.status == "optimal" and s.objective != opt:
            wrong.append((seed, "optimal", s.objective, opt))
        if s.status == "infeasible" and opt is not None:
            wrong.append((seed, "infeasible", opt))
        if opt is not None and s.lower_bound > opt:
            wrong.append((seed, "lower bound", s.lower_bound, opt))
    assert not wrong


def _net(x, *layers):
    import scipy.sparse as sp

    from smug.ir import DenseLayer, NetworkProblem

    dense = tuple(DenseLayer(sp.csr_matrix(np.array(w, float)), np.array(b, float), relu) for w, b, relu in layers)
    return NetworkProblem(dense, np.array(x, float), np.zeros(len(x)), np.arange(len(x)),
                          tuple(f"v{i}" for i in range(len(x))), 0, 0.0)


@pytest.mark.parametrize("problem", [
    # a first-layer product underflows to 0: its row is not exact (the review's case 1)
    _net([1e-200], ([[1e-200]], [0.0], True), ([[1e300], [0.0]], [0.0, 0.0], False)),
    # the underflow allowance itself is below the smallest subnormal (case 2)
    _net([1.0], ([[0.25]], [0.0], True), ([[1e-300]], [0.0], False), ([[1e-300], [0.0]], [0.0, 0.0], False)),
    # a relaxed product pos * a_u underflows to 0 and drops out of the sparse product (case 3)
    _net([1.0], ([[2.5e300]], [-1.5e300], True), ([[5e-324], [0.0]], [0.0, 4e-24], False)),
], ids=["first-layer-underflow", "tiny-allowance", "dropped-product"])
def test_underflow_never_makes_a_bound_lie(problem):
    """The whole input keeps the class by a tiny margin in exact arithmetic: no backend may call the
    problem infeasible, and every bound holds at both masks."""
    full = np.ones(problem.n_vars, bool)
    assert certify_network(problem, full).valid
    bounds = crown_bounds(problem, interval_bounds(problem))
    G, d, others = margin_lines(problem, bounds)
    for mask in _masks(problem.n_vars):
        zs = _preactivations(problem, mask)
        for z, b in zip(zs, bounds):
            assert all(Fraction(float(lo)) <= v <= Fraction(float(up)) for v, lo, up in zip(z, b.lower, b.upper))
        line = sum((Fraction(float(g)) for g, on in zip(G[0], mask) if on), Fraction(float(d[0])))
        assert zs[-1][0] - zs[-1][others[0]] <= line
    for backend in ("auto", "enum", "z3", "highs"):
        assert solve_network(problem, backend=backend, timeout=20).status == "optimal"
