"""Subset- and cardinality-minimal robust explanations against brute force on tiny networks."""

from __future__ import annotations

import numpy as np
import pytest

from _robust_reference import is_counterexample, ref_min_size, ref_robust, tiny_network
from smug.solver.robust import RobustQuery, Verifier
from smug.solver.robust_explain import OPTIMAL, SUBSET, cardinality_minimal, fixing_lower_bound, subset_minimal

CASES = [  # seed, inputs, epsilon, features are pairs of inputs
    (0, 10, 0.125, False),
    (1, 10, 0.05, False),
    (2, 8, float("inf"), False),
    (3, 12, 0.3125, True),
    (4, 10, 0.25, False),
]


@pytest.mark.parametrize("seed,n_in,eps,pairs", CASES)
def test_both_modes_match_brute_force(seed, n_in, eps, pairs):
    problem = tiny_network(seed, n_in=n_in, pairs=pairs)
    verifier = Verifier(RobustQuery(problem, eps))
    sub = subset_minimal(verifier)
    assert sub.status == SUBSET and not sub.unresolved
    assert ref_robust(problem, sub.fixed, eps)
    assert set(sub.counterexamples) == set(np.flatnonzero(sub.fixed).tolist())
    for p, cex in sub.counterexamples.items():
        without = sub.fixed.copy()
        without[p] = False
        assert is_counterexample(problem, without, eps, cex.input)  # replayed by the plain reference
        assert not ref_robust(problem, without, eps)
    card = cardinality_minimal(verifier, start=sub)
    assert card.status == OPTIMAL
    assert ref_robust(problem, card.fixed, eps)
    best = ref_min_size(problem, eps)
    assert card.size == card.lower_bound == best
    assert fixing_lower_bound(verifier) <= best
    assert best <= sub.size


def test_not_robust_input_is_refused():
    problem = tiny_network(0)
    logits = problem.forward(problem.x)
    margin = logits[problem.target] - np.delete(logits, problem.target).max()
    import dataclasses

    strict = dataclasses.replace(problem, delta=float(margin) + 1.0)
    with pytest.raises(ValueError, match="does not keep the target"):
        subset_minimal(Verifier(RobustQuery(strict, 0.1)))


def test_subset_traversal_from_a_robust_set_stays_inside_it():
    problem = tiny_network(3, n_in=12, pairs=True)
    verifier = Verifier(RobustQuery(problem, 0.3125))
    start = np.ones(problem.n_vars, bool)
    start[[0, 5]] = False  # still robust?  the reference says
    if not ref_robust(problem, start, 0.3125):
        start[:] = True
    sub = subset_minimal(verifier, within=start)
    assert sub.status == SUBSET and not np.any(sub.fixed & ~start)
    assert ref_robust(problem, sub.fixed, 0.3125)
    for p, cex in sub.counterexamples.items():
        without = sub.fixed.copy()
        without[p] = False
        assert is_counterexample(problem, without, 0.3125, cex.input)
    with pytest.raises(ValueError, match="not proven robust"):
        subset_minimal(verifier, within=np.zeros(problem.n_vars, bool))
