"""smug.solver.certificate.certify against a brute-force Fraction evaluation of Eq. 3."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from smug.solver.certificate import certify, exact_slacks
import _reference as ref  # tests/solver/_reference.py, on sys.path via tests/conftest.py

# (seed, n_vars, n_rows, style, feasible)
CASES = [
    (0, 3, 2, "normal", True),
    (1, 4, 3, "dyadic", True),
    (2, 5, 4, "dyadic", False),
    (3, 6, 3, "normal", False),
    (4, 8, 4, "dyadic", True),
    (5, 7, 5, "wild", True),
    (6, 8, 3, "wild", False),
    (7, 5, 6, "normal", True),
    (8, 8, 2, "normal", True),
    (9, 6, 4, "dyadic", True),
    (10, 4, 4, "wild", True),
    (11, 8, 5, "dyadic", False),
]


@pytest.mark.parametrize("seed,n_vars,n_rows,style,feasible", CASES)
def test_certify_agrees_with_reference_on_every_mask(seed, n_vars, n_rows, style, feasible):
    problem = ref.random_problem(seed, n_vars, n_rows, style=style, feasible=feasible,
                                 wide_rows=1 if n_vars >= 7 else 0)
    n_valid = 0
    for mask in ref.all_masks(problem.n_vars):
        slacks = ref.ref_slacks(problem, mask)
        cert = certify(problem, mask)
        expected_violated = tuple(i for i, s in enumerate(slacks) if s <= 0)
        assert cert.valid == (not expected_violated), mask
        assert cert.violated == expected_violated, mask
        assert cert.mask_size == int(mask.sum())
        assert cert.n_constraints == problem.n_constraints
        assert cert.min_slack == min(slacks)
        assert exact_slacks(problem, mask.astype(bool)) == slacks
        n_valid += cert.valid
    if feasible:
        assert certify(problem, np.ones(problem.n_vars, dtype=int)).valid  # built that way
        assert n_valid >= 1


def test_certify_sees_exact_ties_as_violations():
    # one row: 1 * v0 + 1 * v1 > 0.5 * (1 + 1)  -> exactly one variable on gives slack 0
    problem = ref.make_problem([[1.0, 1.0]], [1.0, 1.0], [0.0, 0.0], [0, 1], 0.5)
    assert certify(problem, np.array([1, 1])).valid
    for mask in ([1, 0], [0, 1], [0, 0]):
        cert = certify(problem, np.array(mask))
        assert not cert.valid and cert.violated == (0,)
    assert certify(problem, np.array([1, 0])).min_slack == 0


def test_certify_accepts_bool_int_and_float_zero_one_masks():
    problem = ref.random_problem(3, 5, 3, style="normal")
    for mask in ref.all_masks(5):
        expected = ref.ref_valid(problem, mask)
        assert certify(problem, mask.astype(bool)).valid == expected
        assert certify(problem, mask.astype(float)).valid == expected
        assert certify(problem, mask.tolist()).valid == expected


@pytest.mark.parametrize("seed", range(6))
def test_planted_wrong_masks_are_rejected(seed):
    problem = ref.random_problem(100 + seed, 7, 4, style="dyadic" if seed % 2 else "normal", gamma=0.75)
    k, best = ref.ref_minimum(problem)
    assert k is not None
    assert certify(problem, best).valid
    assert k >= 1  # gamma = 0.75: the empty mask fails on these seeds
    # the all-zero mask fails some row, and that row is listed
    zero = np.zeros(problem.n_vars, dtype=int)
    cert = certify(problem, zero)
    assert not cert.valid
    assert cert.violated and cert.violated == ref.ref_violated(problem, zero)
    # switching off any variable of a minimum mask breaks it (minimality), rows listed
    for j in np.flatnonzero(best):
        wrong = best.copy()
        wrong[j] = False
        cert = certify(problem, wrong)
        assert not cert.valid
        assert cert.violated and cert.violated == ref.ref_violated(problem, wrong)
        assert cert.min_slack <= 0
        assert cert.summary()["valid"] is False and cert.summary()["n_violated"] == len(cert.violated)


def test_needed_variable_switched_off_is_reported_on_its_row():
    # row 0 needs m0, row 1 needs m1; m2 is irrelevant
    W = [[2.0, 0.0, 0.0, 1.0], [0.0, 3.0, 0.0, 0.0]]
    problem = ref.make_problem(W, [1.0, 1.0, 1.0, -1.5], [0.0, 0.0, 0.0, 0.0], [0, 1, 2, -1], 0.0,
                               row_names=["n0", "n1"])
    assert certify(problem, np.array([1, 1, 0])).valid
    assert certify(problem, np.array([0, 1, 1])).violated == (0,)
    assert certify(problem, np.array([1, 0, 1])).violated == (1,)
    assert certify(problem, np.array([0, 0, 0])).violated == (0, 1)


@pytest.mark.parametrize("mask", [
    np.ones(2), np.ones(4), np.ones((3, 1)), np.ones((1, 3)), np.array([1, 2, 0]), np.array([1, -1, 0]),
    np.array([0.5, 1.0, 0.0]), np.array([1.0, np.nan, 0.0]), [],
])
def test_bad_masks_raise(mask):
    problem = ref.make_problem([[1.0, 1.0, 1.0]], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0, 1, 2], 0.0)
    with pytest.raises(ValueError):
        certify(problem, mask)


def test_certify_without_rows():
    problem = ref.make_problem(np.zeros((0, 2)), [1.0, 1.0], [0.0, 0.0], [0, 1], 0.0)
    cert = certify(problem, np.array([0, 0]))
    assert cert.valid and cert.violated == () and cert.min_slack is None and cert.n_constraints == 0


def _left_to_right(w, v) -> float:
    """Plain float64 accumulation (Python 3.12's sum() compensates, so no sum())."""
    total = 0.0
    for a, b in zip(w, v):
        total += float(a) * float(b)
    return total


def test_exact_check_where_float_gets_the_sign_wrong():
    # v = [1e16, 1, -1e16] . [1, 1, 1]: float says 0 (1e16 + 1 rounds to 1e16), exact says 1 > 0
    W = np.array([[1e16, 1.0, -1e16]])
    x = np.array([1.0, 1.0, 1.0])
    problem = ref.make_problem(W, x, [0.0, 0.0, 0.0], [-1, 0, -1], 0.0)
    naive = _left_to_right(W[0], x)
    assert naive <= 0  # the naive float evaluation would reject the mask
    cert = certify(problem, np.array([1]))
    assert cert.valid and cert.min_slack == 1
    assert ref.ref_valid(problem, [1])
    # with m0 off the exact value is 0, which fails the strict inequality
    assert certify(problem, np.array([0])).violated == (0,)


def test_exact_check_where_float_claims_a_false_positive():
    # [1e16, -1, -1, -1e16, 1] . ones: float sums left to right to 1 > 0, exact value is -1
    W = np.array([[1e16, -1.0, -1.0, -1e16, 1.0, 2.0]])
    x = np.ones(6)
    problem = ref.make_problem(W, x, np.zeros(6), [-1, -1, -1, -1, -1, 0], 0.0)
    off = np.array([0])
    naive = _left_to_right(W[0], problem.masked_input(off))
    assert naive > 0  # float would accept the empty mask
    cert = certify(problem, off)
    assert not cert.valid and cert.min_slack == -1 and cert.violated == (0,)
    on = certify(problem, np.array([1]))
    assert on.valid and on.min_slack == 1
    assert Fraction(0) < on.min_slack
