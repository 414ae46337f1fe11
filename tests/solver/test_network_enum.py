"""The exhaustive search of :mod:`smug.solver.network_enum` against plain references: every mask
of each size exactly once, the first-layer sums, the margin-line filter, the network restricted
to its varying units, and the optimum against the Fraction brute force."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp

from smug.ir import DenseLayer, NetworkProblem
from smug.solver.network_bounds import crown_bounds, first_layer_on_mask, margin_lines
from smug.solver.network_enum import _batches, _varying_units, enumerate_optimum, relevant_variables

from _reference import random_network, reference_logits, reference_minimum
from _tiny_cnn import tiny_cnn_problem


def _all(c, AT, k, chunk, lines=None, delta=0.0):
    counts = {"checked": 0}
    idx, cols = [], []
    for i, h in _batches(c, AT, k, chunk, lines, delta, counts):
        if i is not None:
            idx.append(i)
            cols.append(h)
    return (np.concatenate(idx) if idx else np.zeros((0, k), int)), (np.hstack(cols) if cols else None), counts


@pytest.mark.parametrize("n, k, chunk", [(7, 0, 4), (7, 1, 3), (7, 3, 5), (9, 4, 1), (6, 6, 2), (8, 2, 100)])
def test_every_mask_comes_once_in_order_with_its_first_layer_sum(n, k, chunk):
    rng = np.random.default_rng(n * 10 + k)
    c, AT = rng.normal(size=5), rng.normal(size=(n, 5))
    idx, h, counts = _all(c, AT, k, chunk)
    assert [tuple(r) for r in idx] == list(itertools.combinations(range(n), k))
    assert counts["checked"] == len(idx)
    for row, col in zip(idx, h.T):
        plain = c.copy()
        for i in row:  # the documented order: c + AT[i0] + ... + AT[ik], bit for bit
            plain = plain + AT[i]
        assert np.array_equal(col, plain)


def test_the_lines_drop_exactly_the_masks_they_refute():
    rng = np.random.default_rng(3)
    n, k, delta = 10, 3, 0.5
    c, AT = rng.normal(size=4), rng.normal(size=(n, 4))
    d, G = rng.normal(size=3), rng.normal(size=(n, 3))
    idx, _, counts = _all(c, AT, k, 7, (d, G), delta)
    kept = [m for m in itertools.combinations(range(n), k) if np.all(d + G[list(m)].sum(axis=0) > delta)]
    assert [tuple(r) for r in idx] == kept and 0 < len(kept) < counts["checked"]


@pytest.mark.parametrize("seed", range(3))
def test_the_varying_units_give_the_full_networks_logits(seed):
    p = tiny_cnn_problem(seed, window=2, delta=None, second_conv=True, classes=4)
    R = relevant_variables(p)
    k = 2
    bounds = crown_bounds(p, None, max_size=k)
    A, c, _, _ = first_layer_on_mask(p)
    AT = A[:, R].T.toarray()
    AT_k, layers = _varying_units(p, c, AT, bounds)
    c_k = layers[0][1]  # the first layer's constant
    assert AT_k.shape[1] < AT.shape[1] or sum(w.shape[0] for w, _, _ in layers[1:]) < \
        sum(l.weight.shape[0] for l in p.layers[1:])  # something was dropped on these networks
    for size in range(k + 1):
        for m in itertools.combinations(range(len(R)), size):
            h = c_k + AT_k[list(m)].sum(axis=0)
            for li, (w, b, relu) in enumerate(layers):
                if li:
                    h = w @ h + b
                if relu:
                    h = np.maximum(h, 0.0)
            mask = np.zeros(p.n_vars, bool)
            mask[R[list(m)]] = True
            exact = np.array([float(v) for v in reference_logits(p, mask)])
            assert np.allclose(h, exact, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_the_optimum_is_the_brute_force_minimum(seed):
    p = random_network(seed, delta=0.05 * (seed % 3))
    k = reference_minimum(p)
    sized = lambda size: (lambda b: (b, margin_lines(p, b)[:2]))(crown_bounds(p, None, max_size=size))
    res = enumerate_optimum(p, sized, p.n_vars, deadline=float("inf"))
    if k is None:
        assert res.mask is None and res.lower_bound > len(relevant_variables(p))
        return
    assert res.mask is not None and res.mask.sum() == k == res.lower_bound
    z = reference_logits(p, res.mask)
    assert all(z[p.target] - z[j] > Fraction(p.delta) for j in range(len(z)) if j != p.target)


@pytest.mark.parametrize("seed, second_conv", [(5, False), (0, True), (4, True)])
def test_the_optimum_on_tiny_cnns_with_their_margin_lines(seed, second_conv):
    p = tiny_cnn_problem(seed, window=2, delta=None, second_conv=second_conv, classes=4)
    k = reference_minimum(p)
    sized = lambda size: (lambda b: (b, margin_lines(p, b)[:2]))(crown_bounds(p, None, max_size=size))
    res = enumerate_optimum(p, sized, p.n_vars, deadline=float("inf"))
    assert res.mask is not None and res.mask.sum() == k == res.lower_bound


def test_a_single_linear_layer_network():
    r = np.random.default_rng(7)
    W, b = r.normal(size=(3, 8)), r.normal(size=3)
    x = r.uniform(0, 1, 8)
    target = int(np.argmax(W @ x + b))
    p = NetworkProblem((DenseLayer(sp.csr_matrix(W), b, False),), x, np.zeros(8), np.arange(8),
                       tuple(f"m{j}" for j in range(8)), target, 0.0)
    k = reference_minimum(p)
    sized = lambda size: (lambda bb: (bb, margin_lines(p, bb)[:2]))(crown_bounds(p, None, max_size=size))
    res = enumerate_optimum(p, sized, p.n_vars, deadline=float("inf"))
    assert res.mask is not None and res.mask.sum() == k == res.lower_bound
