"""Knapsack cuts hold for every robust set they claim to (brute force on tiny networks), and the
LP bound built on them is a true lower bound for any multipliers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from _robust_reference import robust_family, tiny_network
from smug.solver.robust import COUNTEREXAMPLE, RobustQuery, Verifier, gradient
from smug.solver.robust_cuts import CutBound, attack_direction, exact_direction, knapsack_cut, lp_bound, master


@pytest.mark.parametrize("seed,n_in,eps,pairs", [(5, 7, 0.25, False), (3, 8, 0.3125, True), (2, 6, float("inf"), False)])
def test_cuts_hold_for_every_robust_set_up_to_their_size(seed, n_in, eps, pairs):
    problem = tiny_network(seed, n_in=n_in, pairs=pairs)
    query = RobustQuery(problem, eps)
    family = robust_family(problem, eps)
    nothing = np.zeros(problem.n_vars, bool)
    box = query.outer_box(nothing)
    lo32, hi32 = (b.astype(np.float64) for b in query.inner_box32(nothing))
    r = np.random.default_rng(seed)
    verifier = Verifier(query)
    directions = []  # from counterexamples of random non-robust sets, any class
    for _ in range(8):
        if len(directions) >= 4:
            break
        verdict = verifier.verify(r.random(problem.n_vars) < 0.3)
        if verdict.status == COUNTEREXAMPLE:
            c = verdict.counterexample  # the counterexample itself, and its extension to a vertex
            directions.append((exact_direction(problem.x, c.input), c.beats))
            directions.append((attack_direction(problem, c.input, c.beats, lo32, hi32,
                                                gradient(problem, c.input, c.beats)), c.beats))
    cuts = 0
    for d, j in directions:
        for K in range(problem.n_vars + 1):
            cut = knapsack_cut(problem, box, d, j, K)
            if cut is None:
                break  # a cut over more sets is no stronger
            cuts += 1
            for E, robust in family.items():
                if robust and len(E) <= K:
                    fixed = nothing.copy()
                    fixed[list(E)] = True
                    assert cut.holds(fixed), (K, sorted(E))
    assert cuts  # some direction gave a cut
    smallest = min(len(E) for E, robust in family.items() if robust)
    cb = CutBound(problem, box, directions)
    bound = cb.bound(0, problem.n_vars, [], float("inf"))
    assert bound <= smallest, (bound, smallest)


def test_lp_bound_never_exceeds_the_integer_minimum():
    r = np.random.default_rng(0)
    n = 9
    for _ in range(20):
        A = r.integers(0, 50, (4, n))
        b = r.integers(1, 120, 4)
        feasible = [m for m in itertools.product((0, 1), repeat=n) if np.all(A @ np.array(m) >= b)]
        if not feasible:
            continue
        best = min(sum(m) for m in feasible)
        h = master(A, b, False, 5.0)
        y = np.asarray(h.getSolution().row_dual, np.float64)
        assert lp_bound(A, b, y) <= best
        assert lp_bound(A, b, y) >= np.ceil(h.getInfo().objective_function_value - 1e-6) - 1  # near the LP's own
        for _ in range(3):  # any multipliers give a valid bound
            assert lp_bound(A, b, r.random(4) * 3) <= best


def test_exact_direction_keeps_only_exact_moves():
    from fractions import Fraction

    r = np.random.default_rng(0)
    x = r.random(3000)
    x[:20] = 0.0
    x[20:40] = 1e-300
    end = np.where(r.random(3000) < 0.5, r.random(3000).astype(np.float32), np.clip(x + 0.05, 0, 1).astype(np.float32))
    end = end.astype(np.float64)
    d = exact_direction(x, end)
    for a, b, c in zip(x.tolist(), d.tolist(), end.tolist()):
        assert b == 0.0 or Fraction(a) + Fraction(b) == Fraction(c)
    exact = [Fraction(a) + Fraction(c - a) == Fraction(c) for a, c in zip(x.tolist(), end.tolist())]
    assert np.count_nonzero(d) == sum(e and c != a for e, a, c in zip(exact, x.tolist(), end.tolist()))
