"""Minimum hitting sets: the exact lower bound never exceeds the brute-force minimum."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from smug.solver.robust_hitting import incidence, minimum_hitting_set, no_hitting_set_of_size, packing_bound, rc2_minimum


def brute_minimum(sets, n):
    for k in range(n + 1):
        for H in itertools.combinations(range(n), k):
            if all(set(s) & set(H) for s in sets):
                return k


@pytest.mark.parametrize("seed", range(8))
def test_hitting_set_and_bounds_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 9
    sets = [np.flatnonzero(rng.random(n) < 0.35) for _ in range(12)]
    sets = [s for s in sets if len(s)] or [np.array([0])]
    best = brute_minimum(sets, n)
    hs = minimum_hitting_set(sets, n, timeout=5.0)
    assert all(hs.chosen[s].any() for s in sets)
    assert hs.lower_bound <= best <= hs.chosen.sum()
    assert rc2_minimum(sets, n) == best
    assert no_hitting_set_of_size(sets, n, best - 1) and not no_hitting_set_of_size(sets, n, best)


def test_packing_bound_rescales_an_infeasible_packing():
    """Duals that overfill a column are scaled down, so the bound stays a valid one."""
    sets = [np.array([0, 1]), np.array([0, 2]), np.array([0, 3])]
    A = incidence(sets, 4)
    assert packing_bound(A, np.array([1.0, 1.0, 1.0])) == 1  # column 0 holds 3: y / 3, sum 1
    assert packing_bound(A, np.array([-5.0, 0.0, 0.0])) == 0


@pytest.mark.parametrize("seed", range(6))
def test_cuts_with_needs_against_brute_force(seed):
    """Sets that need two elements or more (the cuts of :func:`largest_refuted` counterexamples)."""
    rng = np.random.default_rng(seed)
    n = 8
    sets = [np.flatnonzero(rng.random(n) < 0.5) for _ in range(8)]
    sets = [s for s in sets if len(s) >= 2] or [np.array([0, 1])]
    needs = [int(rng.integers(1, 3)) for _ in sets]
    best = next(k for k in range(n + 1) for H in itertools.combinations(range(n), k)
                if all(len(set(s) & set(H)) >= b for s, b in zip(sets, needs)))
    hs = minimum_hitting_set(sets, n, timeout=5.0, needs=needs)
    assert all(hs.chosen[s].sum() >= b for s, b in zip(sets, needs))
    assert hs.lower_bound <= best <= hs.chosen.sum()
    assert no_hitting_set_of_size(sets, n, best - 1, needs=needs)
    assert not no_hitting_set_of_size(sets, n, best, needs=needs)
