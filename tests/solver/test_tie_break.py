"""The tie-break's greedy over explicit sets of minimum masks: it ends at the least bit string
whichever answers the questions get."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from smug.solver.tie_break import UNDECIDED, least_minimum


def _asker(masks: list[np.ndarray], pick):
    """Questions answered from ``masks`` (all minimum masks); ``pick`` chooses among the fitting ones."""
    asked = []

    def ask(decided, j):
        asked.append(j)
        fit = [m for m in masks if not m[j] and all(m[v] == on for v, on in decided.items())]
        return pick(fit) if fit else None

    return ask, asked


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("pick", ["first", "last"])
def test_the_greedy_ends_at_the_least_bit_string(seed, pick):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 8)), int(rng.integers(1, 4))
    every = [np.isin(np.arange(n), on) for on in itertools.combinations(range(n), min(k, n))]
    masks = [every[i] for i in sorted(rng.choice(len(every), size=int(rng.integers(1, len(every) + 1)),
                                                 replace=False))]
    want = min(masks, key=lambda m: tuple(m.tolist()))
    choose = (lambda fit: fit[0]) if pick == "first" else (lambda fit: fit[-1])
    for start in (masks[0], masks[-1]):
        ask, asked = _asker(masks, choose)
        out, done = least_minimum(range(n), start, time.perf_counter() + 10, ask)
        assert done and np.array_equal(out, want)
        assert len(asked) <= n


def test_an_undecided_question_or_the_deadline_ends_it_with_the_current_mask():
    start = np.array([True, True, False])
    out, done = least_minimum(range(3), start, time.perf_counter() + 10, lambda decided, j: UNDECIDED)
    assert not done and np.array_equal(out, start)
    out, done = least_minimum(range(3), start, time.perf_counter() - 1, lambda decided, j: None)
    assert not done and np.array_equal(out, start)


def test_the_variables_must_come_in_increasing_order():
    with pytest.raises(ValueError, match="increasing order"):
        least_minimum([2, 1], np.array([True, False]), time.perf_counter() + 1, lambda decided, j: None)
