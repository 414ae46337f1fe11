"""Rigorous bounds over a box: every bound holds for the exact network (checked with Fractions)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp

from _robust_reference import fraction_logits, tiny_network
import smug.ir
from smug.ir import DenseLayer
from smug.solver.network_exact import exact_preactivations
from smug.solver.robust_bounds import interval_layer, layer_bounds, margin_lower_bounds, relu_upper_line


def _exact(values) -> list[Fraction]:
    N, E = values
    return [Fraction(int(n)) * Fraction(2) ** E for n in N]


@pytest.fixture(params=["dense", "sparse"])
def products(request, monkeypatch) -> str:
    """Layers built in the test multiply as dense arrays (small weights, the default) or as CSR."""
    if request.param == "sparse":
        monkeypatch.setattr(smug.ir, "DENSE_PRODUCTS_MAX", 0)
    return request.param


def test_a_layer_multiplies_as_dense_when_small_and_as_csr_when_sparse(products):
    W = sp.csr_matrix(np.array([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]]))
    layer = DenseLayer(W, np.zeros(2), True)
    assert isinstance(layer.matrix, np.ndarray) == (products == "dense")
    for M, want in [(layer.matrix, W), (layer.matrix_t, W.T), (layer.abs_matrix_t, abs(W.T)),
                    (layer.signed_parts[0], W.maximum(0)), (layer.signed_parts[1], W.minimum(0))]:
        assert np.array_equal(sp.csr_matrix(M).toarray(), want.toarray())
    sparse = DenseLayer(sp.csr_matrix(np.eye(8)), np.zeros(8), False)
    assert sp.issparse(sparse.matrix)  # an eighth non-zero: CSR


def test_an_infinite_input_bound_gives_an_infinite_bound_not_nan(products):
    """A dense zero weight times an infinite bound is NaN in float: the bound must be infinite instead."""
    layer = DenseLayer(sp.csr_matrix(np.array([[1.0, 0.0], [3.0, 0.5]])), np.zeros(2), True)
    lo, hi = interval_layer(layer, np.zeros(2), np.array([np.inf, 1.0]))
    assert not np.isnan(lo).any() and not np.isnan(hi).any()
    assert np.all(lo <= 0.0) and np.isinf(hi).all()


def test_a_layer_pickles_as_its_fields():
    import pickle

    layer = DenseLayer(sp.csr_matrix(np.array([[1.0, -2.0]])), np.zeros(1), True)
    before = len(pickle.dumps(layer))
    _ = layer.matrix_t, layer.abs_matrix_t, layer.signed_parts
    back = pickle.loads(pickle.dumps(layer))
    assert len(pickle.dumps(layer)) == before and set(vars(back)) == {"weight", "bias", "relu"}
    assert np.array_equal(back.matrix, layer.matrix)


@pytest.mark.parametrize("seed", range(4))
def test_layer_and_margin_bounds_hold_at_sampled_points(seed, products):
    problem = tiny_network(seed, n_in=12, hidden=(8, 6), classes=4)
    rng = np.random.default_rng(seed)
    lo = np.clip(problem.x - 0.2, 0, 1)
    hi = np.clip(problem.x + 0.2, 0, 1)
    bounds = layer_bounds(problem.layers, (lo, hi))
    lbs, _, others = margin_lower_bounds(problem.layers, bounds, (lo, hi), problem.target)
    corners = rng.integers(0, 2, (20, 12))
    points = np.r_[rng.uniform(lo, hi, (40, 12)), np.where(corners, hi, lo)]
    for v in points:
        for k, z in enumerate(exact_preactivations(problem.layers, v)):
            for q, a, b in zip(_exact(z), bounds.lower[k], bounds.upper[k]):
                assert Fraction(a) <= q <= Fraction(b)
        z = fraction_logits(problem, v)
        for j, lb in zip(others, lbs):
            assert Fraction(lb) <= z[problem.target] - z[j]


def test_cancelling_weights_keep_the_exact_value_inside(products):
    """float64 gives (1 + 1e-16) - 1 = 0; the exact value 1e-16 must stay inside the bounds."""
    layer = DenseLayer(sp.csr_matrix(np.array([[1.0, 1e-16, -1.0], [1e16, 1.0, -1e16]])), np.zeros(2), True)
    point = np.ones(3)
    lo, hi = interval_layer(layer, point, point)
    exact = [Fraction(1) + Fraction(1e-16) - Fraction(1), Fraction(1)]
    assert float((layer.weight @ point)[0]) != float(exact[0])  # the plain float sum is wrong
    for a, q, b in zip(lo, exact, hi):
        assert Fraction(a) <= q <= Fraction(b)
    # the same through CROWN back-substitution into a second layer
    top = DenseLayer(sp.csr_matrix(np.array([[1e16, -1e16], [1.0, 0.0]])), np.zeros(2), False)
    problem_layers = (layer, top)
    bounds = layer_bounds(problem_layers, (point, point))
    lbs, _, _ = margin_lower_bounds(problem_layers, bounds, (point, point), 0)
    h = [max(q, Fraction(0)) for q in exact]
    z = [Fraction(1e16) * h[0] - Fraction(1e16) * h[1], h[0]]
    assert Fraction(lbs[0]) <= z[0] - z[1]


def test_relu_upper_line_is_valid_exactly():
    rng = np.random.default_rng(0)
    l = -np.exp(rng.uniform(-30, 10, 500))
    u = np.exp(rng.uniform(-30, 10, 500))
    s, t = relu_upper_line(l, u)
    for a, b, si, ti in zip(l, u, s, t):
        S, T = Fraction(si), Fraction(ti)
        assert S * Fraction(a) + T >= 0
        assert S * Fraction(b) + T >= Fraction(b)


@pytest.mark.parametrize("seed", range(5))
def test_fixing_minimum_is_below_every_vertex_of_the_fixing_polytope(seed):
    """min N v over {x + d s : s in [0,1]^n, sum(1 - s) <= k}: its vertices keep at most k entries at x."""
    import itertools

    from smug.solver.robust_bounds import fixing_minimum

    rng = np.random.default_rng(seed)
    n, k = 7, int(rng.integers(0, 5))
    x, d = rng.uniform(0, 1, n), rng.normal(size=n) * 0.1
    N = rng.normal(size=(3, n)) * 10.0 ** rng.integers(-3, 4, size=(3, n))
    bound = fixing_minimum(x, d, k)(N)
    for kept in itertools.chain.from_iterable(itertools.combinations(range(n), r) for r in range(k + 1)):
        s = np.ones(n)
        s[list(kept)] = 0.0
        for row, b in zip(N, bound):
            exact = sum(Fraction(w) * (Fraction(a) + Fraction(e) * Fraction(si)) for w, a, e, si in zip(row, x, d, s))
            assert Fraction(b) <= exact


def _max_pool_network(seed: int) -> tuple[DenseLayer, ...]:
    """A ReLU layer, then max(a, b) lowered as ``relu(a - b) + relu(b)``: the second unit of each pair
    passes a ReLU output through (exactly >= 0), the first is a difference (may be either sign)."""
    rng = np.random.default_rng(seed)
    first = DenseLayer(sp.csr_matrix(rng.normal(size=(6, 5))), rng.normal(size=6) * 0.1, True)
    rows, cols, vals = [], [], []
    for p in range(3):
        a, b = 2 * p, 2 * p + 1
        rows += [2 * p, 2 * p, 2 * p + 1]
        cols += [a, b, b]
        vals += [1.0, -1.0, 1.0]
    pool = DenseLayer(sp.csr_matrix((vals, (rows, cols)), shape=(6, 6)), np.zeros(6), True)
    top = DenseLayer(sp.csr_matrix(rng.normal(size=(3, 6))), np.zeros(3), False)
    return first, pool, top


@pytest.mark.parametrize("seed", range(3))
def test_a_pass_through_of_relu_outputs_is_stable_and_every_bound_holds(seed, products):
    """The rounding allowance must not push a sum of non-negative terms below zero (a max-pool's
    pass-through would look unstable); every bound still holds exactly at sampled points."""
    layers = _max_pool_network(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, 5)
    lo, hi = x - 0.3, x + 0.3
    bounds = layer_bounds(layers, (lo, hi))
    assert np.all(bounds.lower[1][1::2] == 0.0)  # pass-throughs: exactly active, not [-tiny, u]
    assert np.any((bounds.lower[0] < 0) & (bounds.upper[0] > 0))  # the first layer does cross zero
    for v in np.r_[rng.uniform(lo, hi, (40, 5)), np.where(rng.integers(0, 2, (20, 5)), hi, lo)]:
        for k, z in enumerate(exact_preactivations(layers, v)):
            for q, a, b in zip(_exact(z), bounds.lower[k], bounds.upper[k]):
                assert Fraction(a) <= q <= Fraction(b)


def test_a_negative_term_keeps_the_rounding_allowance():
    """Only a sum with no negative term is known to be >= 0 by its signs: a bias below zero or a
    negative weight on a positive input leaves the bound as rounded."""
    layer = DenseLayer(sp.csr_matrix(np.array([[1.0, 0.0], [1.0, -1e-300], [1.0, 0.0]])),
                       np.array([0.0, 0.0, -1e-300]), True)
    lo, _ = interval_layer(layer, np.zeros(2), np.array([1.0, 1.0]))
    assert lo[0] == 0.0 and lo[1] < 0.0 and lo[2] < 0.0


def test_sparse_and_dense_specifications_give_the_same_bounds(products):
    """CROWN with a CSR specification (rows stay sparse through sparse layers) is the dense one."""
    from smug.solver.robust_bounds import back_substitute

    layers = _max_pool_network(0)
    x = np.full(5, 0.5)
    box = (x - 0.3, x + 0.3)
    bounds = layer_bounds(layers, box)
    C = sp.csr_matrix(np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]]))
    dense, N_dense = back_substitute(layers, 2, C.toarray(), list(bounds.lower), list(bounds.upper), box)
    sparse, N_sparse = back_substitute(layers, 2, C, list(bounds.lower), list(bounds.upper), box)
    assert sp.issparse(N_sparse) == (products == "sparse") and not sp.issparse(N_dense)
    assert np.allclose(sp.csr_matrix(N_sparse).toarray(), N_dense, rtol=1e-15, atol=0)
    assert np.allclose(sparse, dense, rtol=1e-12, atol=1e-14)


def test_a_nan_bound_is_never_cut_to_a_sign():
    """A NaN input bound may hide a term of either sign: the sign rule must not cut it to 0."""
    layer = DenseLayer(sp.csr_matrix(np.array([[1.0]])), np.zeros(1), False)
    lo, hi = interval_layer(layer, np.array([np.nan]), np.array([np.nan]))
    assert not (lo[0] >= 0.0) and not (hi[0] <= 0.0)


def test_an_unbounded_unused_unit_gives_an_infinite_bound_not_nan(products):
    """A unit with bounds [0, inf] that the next layer does not read: its zero weight times inf must not
    turn the CROWN bound into NaN (the bound is -inf: the rounding allowance covers every column)."""
    from smug.solver.robust_bounds import back_substitute

    first = DenseLayer(sp.csr_matrix(np.eye(2)), np.zeros(2), True)
    top = DenseLayer(sp.csr_matrix(np.array([[1.0, 0.0]])), np.zeros(1), False)
    box = (np.array([-1.0, 0.0]), np.array([1.0, np.inf]))
    for C in (np.array([[1.0]]), sp.csr_matrix(np.array([[1.0]]))):
        lb, _ = back_substitute((first, top), 1, C, [np.array([-1.0, 0.0])], [np.array([1.0, np.inf])], box)
        assert not np.isnan(lb).any() and lb[0] <= -1.0
