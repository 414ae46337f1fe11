import functools
import itertools

import numpy as np
import pytest

from smug.solver.network_bounds import crown_bounds, interval_bounds, margin_lines, unstable_counts

from _reference import random_network
from _tiny_cnn import tiny_cnn_problem


@functools.lru_cache(maxsize=1)
def _problems():
    return [random_network(s) for s in range(4)] + [tiny_cnn_problem(s, window=2, second_conv=s % 2 == 1)
                                                    for s in range(4)]


def _masks(n: int, max_size: int | None):
    for on in itertools.product((0, 1), repeat=n):
        if max_size is None or sum(on) <= max_size:
            yield np.array(on, bool)


@pytest.mark.parametrize("index", range(8))
@pytest.mark.parametrize("max_size", [None, 0, 1, 2])
def test_bounds_and_margin_lines_hold_for_every_mask_they_cover(index, max_size):
    p = _problems()[index]
    box = interval_bounds(p)
    full = crown_bounds(p, box)
    bounds = full if max_size is None else crown_bounds(p, full, max_size=max_size)
    G, d, others = margin_lines(p, bounds)
    for mask in _masks(p.n_vars, max_size):
        h = p.masked_input(mask)
        for layer, b, wide in zip(p.layers, bounds, box):
            z = layer.weight @ h + layer.bias
            assert np.all(b.lower <= z) and np.all(z <= b.upper)
            assert np.all(wide.lower <= b.lower) and np.all(b.upper <= wide.upper)  # never looser
            h = np.maximum(z, 0) if layer.relu else z
        margins = h[p.target] - h[others]
        assert np.all(margins <= G @ mask + d)


def test_crown_and_size_limits_fix_more_relus_on_the_mnist_cnn(mnist_test_split):
    from smug.encoders.network import encode_network
    from smug.models.zoo import load_model

    model = load_model("mnist-cnn")[0]
    p = encode_network(model, mnist_test_split[0][0], window=4)
    box = interval_bounds(p)
    full = crown_bounds(p, box)
    small = crown_bounds(p, full, max_size=2)
    before, after, two = (sum(unstable_counts(p, b)) for b in (box, full, small))
    assert two < after < before


def test_copies_of_relu_units_are_stable():
    """A unit that carries a ReLU output (relu(h) = h) is exactly computed: no rounding allowance."""
    p = tiny_cnn_problem(0, window=3)
    b = interval_bounds(p)[1]
    copies = np.diff(p.layers[1].weight.tocsr().indptr) == 1
    assert copies.any() and np.all(b.lower[copies] >= 0)
