"""Strategy candidates: the input each attack plays against a set, its linearisation, and
candidates that beat every strategy (checked by plain forward passes and brute force)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from _robust_reference import tiny_network
from smug.solver.robust import RobustQuery
from smug.solver.robust_strategies import SLACK, Strategies


def plain_margin(problem, v: np.ndarray) -> float:
    """``min_j logit[t] - logit[j]`` by a plain forward pass."""
    z = problem.forward(v)
    return float(min(z[problem.target] - z[j] for j in range(len(z)) if j != problem.target))


def directions(problem, eps: float, count: int, seed: int) -> list[np.ndarray]:
    """Random vertex directions of the box of no fixed feature."""
    lo, hi = RobustQuery(problem, eps).outer_box(np.zeros(problem.n_vars, bool))
    r = np.random.default_rng(seed)
    return [np.where(r.random(problem.x.size) < 0.5, lo, hi) - problem.x for _ in range(count)]


@pytest.mark.parametrize("pairs", [False, True])
def test_point_moves_exactly_the_entries_of_free_features(pairs):
    problem = tiny_network(4, n_in=8, pairs=pairs)
    d = directions(problem, 0.25, 1, 0)[0]
    strategies = Strategies(RobustQuery(problem, 0.25))
    fixed = np.zeros(problem.n_vars, bool)
    fixed[::2] = True
    v = strategies.point(d, fixed)
    expected = problem.x.copy()
    for p in range(problem.x.size):
        if not fixed[problem.group[p]]:
            expected[p] += d[p]
    assert np.array_equal(v, expected)


def test_rows_are_exact_on_the_linear_region_of_their_point():
    problem = tiny_network(7, n_in=9)
    strategies = Strategies(RobustQuery(problem, 0.125))
    r = np.random.default_rng(1)
    checked = 0
    for d in directions(problem, 0.125, 6, 2):
        at = r.random(problem.n_vars) < 0.4
        first = len(strategies.coef)
        strategies.directions.append(d)
        strategies.linearise(len(strategies.directions) - 1, at)
        # at its point a row reads its class's margin (c.m - rhs = mu_j - delta - SLACK); the first row's class
        # is the closest one
        read = [c @ at - rhs + problem.delta + SLACK for c, rhs in zip(strategies.coef[first:], strategies.rhs[first:])]
        assert read[0] == pytest.approx(plain_margin(problem, strategies.point(d, at)), abs=1e-9)
        assert min(read) >= read[0] - 1e-9
        for p in range(problem.n_vars):  # one feature flipped: exact when the ReLU pattern stays
            m = at.copy()
            m[p] = ~m[p]
            same = all(np.array_equal(a > 0, b > 0) for a, b in zip(pre_activations(problem, strategies.point(d, at)),
                                                                    pre_activations(problem, strategies.point(d, m))))
            if not same:
                continue
            for c, rhs in zip(strategies.coef[first:], strategies.rhs[first:]):
                j_margin = c @ m - rhs + problem.delta + SLACK  # the linearised margin of the row's class
                assert j_margin >= plain_margin(problem, strategies.point(d, m)) - 1e-9
                checked += 1
    assert checked > 0


def pre_activations(problem, v: np.ndarray) -> list[np.ndarray]:
    out, h = [], v
    for layer in problem.layers:
        z = layer.weight @ h + layer.bias
        out.append(z)
        h = np.maximum(z, 0.0) if layer.relu else z
    return out


@pytest.mark.parametrize("seed,eps", [(3, 0.25), (5, 0.5), (6, float("inf"))])
def test_a_candidate_beats_every_strategy_and_is_no_larger_than_asked(seed, eps):
    problem = tiny_network(seed, n_in=8)
    strategies = Strategies(RobustQuery(problem, eps))
    everything = np.ones(problem.n_vars, bool)
    strategies.admit(everything)  # x keeps the class: fixing everything beats every strategy
    for d in directions(problem, eps, 5, seed):
        strategies.add(d, everything)
    found = []
    for K in range(problem.n_vars + 1):
        H = strategies.candidate(K, deadline=time.perf_counter() + 5.0)
        if H is None:
            continue
        found.append(K)
        assert H.sum() <= K
        assert all(plain_margin(problem, strategies.point(d, H)) > problem.delta for d in strategies.directions)
    assert found and found[0] < problem.n_vars  # some candidate fixes less than everything


def linear_strategies(seed: int, eps: float):
    """A network with no ReLU (the rows are exact everywhere) and four random strategies against it."""
    problem = tiny_network(seed, n_in=8, hidden=())
    strategies = Strategies(RobustQuery(problem, eps))
    everything = np.ones(problem.n_vars, bool)
    for d in directions(problem, eps, 4, 9):
        strategies.add(d, everything)
    return problem, strategies


def smallest_beating(problem, strategies, push: float) -> int:
    """Brute force: the fewest features of a set whose input beats every strategy by ``delta + SLACK + push``."""
    n = problem.n_vars
    for k in range(n + 1):
        for s in itertools.combinations(range(n), k):
            m = np.isin(np.arange(n), s)
            if all(plain_margin(problem, strategies.point(d, m)) > problem.delta + SLACK + push for d in strategies.directions):
                return k
    raise AssertionError("no set beats every strategy")


@pytest.mark.parametrize("seed,eps", [(1, 0.5), (4, 0.5), (7, 0.25)])
def test_no_candidate_below_the_smallest_set_that_beats_a_linear_network(seed, eps):
    problem, strategies = linear_strategies(seed, eps)
    smallest = smallest_beating(problem, strategies, 0.0)
    assert strategies.candidate(smallest, deadline=time.perf_counter() + 5.0) is not None
    assert smallest > 0
    assert strategies.candidate(smallest - 1, deadline=time.perf_counter() + 5.0) is None


@pytest.mark.parametrize("seed,eps", [(1, 0.5), (4, 0.5), (7, 0.25)])
def test_a_pushed_candidate_on_a_linear_network_is_a_smallest_set_beating_every_strategy_by_the_push(seed, eps):
    problem, strategies = linear_strategies(seed, eps)
    clean = plain_margin(problem, problem.x)
    for push in (0.0, 0.1 * clean, 0.3 * clean):
        H = strategies.candidate(problem.n_vars, deadline=time.perf_counter() + 5.0, push=push)
        assert H is not None and int(H.sum()) == smallest_beating(problem, strategies, push)
        assert all(plain_margin(problem, strategies.point(d, H)) > problem.delta + push for d in strategies.directions)
