import numpy as np
import pytest

from smug.solver.network_exact import dyadic, exact_logits

from _reference import random_network, reference_logits
from _tiny_cnn import tiny_cnn_problem


def test_dyadic_is_exact_over_the_whole_exponent_range():
    a = np.array([0.0, 1.0, -3.5, 1e-300, -2.0**-1074, 1.7976931348623157e308, 0.1])
    N, E = dyadic(a)
    from fractions import Fraction

    assert [Fraction(int(n)) * Fraction(2) ** E for n in N] == [Fraction(float(v)) for v in a]


@pytest.mark.parametrize("seed", range(6))
def test_exact_logits_equal_the_plain_fraction_forward(seed):
    r = np.random.default_rng(seed)
    p = random_network(seed) if seed % 2 else tiny_cnn_problem(seed, window=3)
    for _ in range(3):
        mask = r.random(p.n_vars) < 0.5
        assert exact_logits(p.layers, p.masked_input(mask)) == reference_logits(p, mask)
