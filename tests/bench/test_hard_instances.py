"""smug.bench.hard_instances and the exact clause compilation it stresses (issue 3)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import z3

import smug.solver.z3_backend as z3_backend
from smug.bench.hard_instances import hard_first_layer, random_stem, smooth_noise_image
from smug.solver.certificate import certify
from smug.solver.exact import collapsed_rows
from smug.solver.smtlib import to_smtlib
from smug.solver.solve import BACKENDS, solve
from smug.solver.z3_backend import TABLE_ARITY, clause_holds, failing_assignments, row_holds, threshold_clauses

SMALL = dict(size=32, k=40)


def _same(a, b) -> bool:
    return (
        (a.weights != b.weights).nnz == 0 and a.weights.shape == b.weights.shape
        and np.array_equal(a.x, b.x) and np.array_equal(a.group, b.group) and np.array_equal(a.bias, b.bias)
        and a.gamma == b.gamma and a.var_names == b.var_names and a.constraint_names == b.constraint_names
    )


# --------------------------------------------------------------------------- generator


def test_generator_is_deterministic_by_seed():
    a, b = hard_first_layer(seed=3, **SMALL), hard_first_layer(seed=3, **SMALL)
    assert _same(a, b)
    assert not _same(a, hard_first_layer(seed=4, **SMALL))


def test_image_and_stem():
    x = smooth_noise_image(48, seed=1)
    assert x.shape == (3, 48, 48) and np.isclose(np.abs(x).max(), 1.0)
    assert np.abs(np.diff(x, axis=2)).mean() < 0.2 * np.abs(x).mean()  # smooth: neighbours are close
    layer = random_stem(kernel=7, channels_out=8, size=48, stride=2, seed=1)
    assert layer.weight.shape == (8, 3, 7, 7) and layer.pads == (3, 3, 3, 3)
    assert layer.output_shape == (8, 24, 24) and not layer.bias.any()
    big = random_stem(kernel=7, channels_out=64, size=16, seed=0).weight
    assert abs(big.std() - np.sqrt(2 / 147)) < 0.01  # He-normal: N(0, 2 / fan_in)


@pytest.mark.parametrize("kernel,gamma", [(7, 0.0), (3, 0.5)])
def test_rows_are_the_top_k_positive_neurons(kernel, gamma):
    p = hard_first_layer(kernel=kernel, gamma=gamma, seed=2, **SMALL)
    assert p.n_constraints == 40 and p.gamma == gamma and p.n_vars == 64  # 32x32 in 4x4 blocks
    original = p.weights @ p.x
    assert (original > 0).all() and not p.bias.any() and not p.baseline.any()
    layer = random_stem(kernel=kernel, size=32, seed=2)
    z = np.sort(layer.preactivation(smooth_noise_image(32, seed=2), with_bias=False).ravel())[::-1]
    assert np.allclose(np.sort(original)[::-1], z[:40])  # exactly the 40 largest pre-activations


def test_fewer_rows_when_fewer_neurons_are_positive():
    p = hard_first_layer(kernel=3, k=10**6, size=16, channels_out=4, seed=0)
    layer = random_stem(kernel=3, channels_out=4, size=16, seed=0)
    positive = int((layer.preactivation(smooth_noise_image(16, seed=0), with_bias=False) > 0).sum())
    assert 0 < p.n_constraints == positive < layer.n_neurons


def test_bad_arguments():
    with pytest.raises(ValueError):
        hard_first_layer(k=0, size=16)
    with pytest.raises(ValueError):
        hard_first_layer(gamma=1.0, size=16, k=5)
    with pytest.raises(ValueError):
        hard_first_layer(sigma=-1.0, size=16, k=5)


def test_seven_by_seven_rows_read_up_to_nine_blocks_and_compile():
    p = hard_first_layer(kernel=7, seed=0, **SMALL)
    widths = {len(coef) for coef, _ in collapsed_rows(p, np.arange(p.n_constraints))}
    assert max(widths) == 9 <= TABLE_ARITY  # 3 x 3 blocks: every row becomes clauses


@pytest.mark.parametrize("kernel,gamma,seed", [(7, 0.0, 0), (7, 0.5, 1), (3, 0.0, 2)])
def test_small_instance_every_backend_agrees_and_certifies(kernel, gamma, seed, monkeypatch):
    p = hard_first_layer(kernel=kernel, gamma=gamma, seed=seed, **SMALL)
    ascends = []
    monkeypatch.setattr(z3_backend, "ascend", lambda *a, **k: ascends.append(1) or 0)
    objectives = set()
    for backend in BACKENDS:
        sol = solve(p, backend=backend, timeout=30.0)
        assert sol.status == "optimal" and sol.proven_optimal, (backend, sol.proof)
        assert sol.certificate.valid and certify(p, sol.mask).valid
        assert sol.objective == int(sol.mask.sum()) == sol.lower_bound > 0
        objectives.add(sol.objective)
    assert len(objectives) == 1
    assert not ascends  # propositional throughout: MaxSAT, never the LRA cardinality search
    # an independent optimum: plain z3 on the SMT-LIB2 text (exact LRA rows, no clauses)
    opt = z3.Optimize()
    opt.from_string(to_smtlib(p))
    assert opt.check() == z3.sat
    model = opt.model()
    mask = np.array([z3.is_true(model.eval(z3.Bool(n), model_completion=True)) for n in p.var_names])
    assert int(mask.sum()) == objectives.pop() and certify(p, mask).valid


# --------------------------------------------------------------------------- clause compilation


def _failing_by_clauses(coef, r):
    js = sorted(coef)
    clauses = threshold_clauses(coef, r)
    bad = []
    for bits in itertools.product((False, True), repeat=len(js)):
        on = {j for j, b in zip(js, bits) if b}
        holds = all(clause_holds(c, on) for c in clauses)
        assert holds == row_holds(coef, r, on)  # the CNF is the row, assignment by assignment
        if not holds:
            bad.append(dict(zip(js, bits)))
    return clauses, bad


def _random_row(rng, n, style):
    js = sorted(rng.choice(40, size=n, replace=False).tolist())
    if style == "ties":  # small integers: many subset sums hit r exactly
        ints = rng.integers(-4, 5, size=n)
        ints[ints == 0] = 1
        coef = {j: Fraction(int(a)) for j, a in zip(js, ints)}
        subset = rng.random(n) < 0.5
        r = sum((coef[j] for j, s in zip(js, subset) if s), Fraction(0))
        return coef, r
    if style == "wild":  # dyadic floats over a huge exponent range
        vals = rng.normal(size=n) * 2.0 ** rng.integers(-60, 60, size=n)
    else:
        vals = rng.normal(size=n)
    coef = {j: Fraction(float(v)) for j, v in zip(js, vals) if v != 0}
    r = Fraction(float(rng.normal() * (2.0 ** rng.integers(-60, 60) if style == "wild" else 1.0)))
    return coef, r


@pytest.mark.parametrize("style", ["ties", "normal", "wild"])
def test_fast_compile_equals_the_fraction_reference(style):
    rng = np.random.default_rng({"ties": 0, "normal": 1, "wild": 2}[style])
    n_ties = 0
    for t in range(120):
        coef, r = _random_row(rng, int(rng.integers(0, TABLE_ARITY + 1)), style)
        clauses, bad = _failing_by_clauses(coef, r)
        assert bad == failing_assignments(coef, r)
        # minimal: no clause contains another, and every literal is needed
        sets = [frozenset(c) for c in clauses]
        assert len(set(sets)) == len(sets)
        assert not any(a < b for a in sets for b in sets)
        n_ties += any(sum((coef[j] for j in s), Fraction(0)) == r
                      for k in range(len(coef) + 1) for s in itertools.combinations(sorted(coef), k))
    if style == "ties":
        assert n_ties >= 100  # most rows have an assignment that ties r exactly (and must fail)


def test_exact_ties_fail_and_degenerate_rows():
    # 1*m0 + 1*m1 > 1: the tie m0 + m1 = 1 fails, so both are needed
    assert sorted(threshold_clauses({0: Fraction(1), 1: Fraction(1)}, Fraction(1))) == [((0, True),), ((1, True),)]
    # 1*m0 - 1*m1 > 0: m0 on and m1 off; the tie (both on) fails
    assert sorted(threshold_clauses({0: Fraction(1), 1: Fraction(-1)}, Fraction(0))) == [((0, True),), ((1, False),)]
    # a tie far below the float resolution: 2**-80 + 1 - 1 > 2**-80 fails exactly
    tiny = Fraction(1, 2**80)
    coef = {0: tiny, 1: Fraction(1), 2: Fraction(-1)}
    clauses, bad = _failing_by_clauses(coef, tiny)
    assert {0: True, 1: True, 2: True} in bad and not all(clause_holds(c, {0, 1, 2}) for c in clauses)
    assert all(clause_holds(c, {0, 1}) for c in clauses)
    assert threshold_clauses({}, Fraction(0)) == [()]  # 0 > 0 never holds: the empty clause
    assert threshold_clauses({}, Fraction(-1)) == []  # 0 > -1 always holds
    assert threshold_clauses({3: Fraction(2)}, Fraction(5)) == [()]  # even m3 on is too little
