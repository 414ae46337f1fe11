"""smug.solver.exact against plain Fraction arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp

from smug.solver.exact import collapsed_rows, dyadic, exact_row_dots, exact_values, to_fraction
import _reference as ref  # tests/solver/_reference.py, on sys.path via tests/conftest.py

SPECIAL = np.array([
    0.0, -0.0, 1.0, -1.0, 0.1, -3.75, 1e-300, -1e-300, 1e300, -1e300, 5e-324, -5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 2.0**-1074 * 12345,
    np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0), 123456789.123456789, 2.0**52 + 1,
])


def _wild(rng: np.random.Generator, size: int) -> np.ndarray:
    """Normal values, some scaled to tiny/huge magnitudes, some special floats, random signs."""
    v = rng.normal(size=size) * rng.choice([1.0, 1.0, 1.0, 1e-300, 1e-200, 1e200, 1e300, 1e-310], size=size)
    special = rng.random(size) < 0.2
    v[special] = rng.choice(SPECIAL, size=int(special.sum()))
    return v


def _random_sparse(rng: np.random.Generator, n_rows: int, n_cols: int, density: float) -> sp.csr_matrix:
    dense = np.where(rng.random((n_rows, n_cols)) < density, _wild(rng, n_rows * n_cols).reshape(n_rows, n_cols), 0.0)
    dense[rng.random(n_rows) < 0.25] = 0.0  # empty rows
    W = sp.csr_matrix(dense)
    assert W.nnz == 0 or (np.abs(W.data) > 0).all()
    return W


def _ref_dots(W: sp.csr_matrix, v: np.ndarray) -> list[Fraction]:
    out = []
    for i in range(W.shape[0]):
        lo, hi = W.indptr[i], W.indptr[i + 1]
        out.append(sum((Fraction(float(w)) * Fraction(float(v[p]))
                        for w, p in zip(W.data[lo:hi], W.indices[lo:hi])), Fraction(0)))
    return out


# --------------------------------------------------------------------------- dyadic


def test_dyadic_is_exact_on_special_values():
    mant, exp = dyadic(SPECIAL)
    assert mant.dtype == object and exp.dtype == np.int64
    for v, m, e in zip(SPECIAL, mant, exp):
        assert isinstance(m, int)
        assert abs(m) < 2**53
        assert to_fraction(m, int(e)) == Fraction(float(v)), v


def test_dyadic_is_exact_on_random_values():
    rng = np.random.default_rng(1)
    values = _wild(rng, 2000)
    mant, exp = dyadic(values)
    for v, m, e in zip(values, mant, exp):
        assert to_fraction(m, int(e)) == Fraction(float(v))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_dyadic_rejects_non_finite(bad):
    with pytest.raises(ValueError):
        dyadic(np.array([1.0, bad, 2.0]))
    with pytest.raises(ValueError):
        dyadic(np.array(bad))


def test_exact_row_dots_rejects_non_finite_data():
    W = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError):
        exact_row_dots(W, np.ones(2))
    with pytest.raises(ValueError):
        exact_row_dots(sp.csr_matrix(np.eye(2)), np.array([1.0, np.inf]))


def test_to_fraction_and_exact_values():
    assert to_fraction(3, 2) == 12
    assert to_fraction(-3, -2) == Fraction(-3, 4)
    assert to_fraction(0, -1000) == 0
    assert exact_values(SPECIAL) == [Fraction(float(v)) for v in SPECIAL]


# --------------------------------------------------------------------------- exact_row_dots


@pytest.mark.parametrize("seed", range(8))
def test_exact_row_dots_matches_fraction_reference(seed):
    rng = np.random.default_rng(seed)
    n_rows, n_cols = int(rng.integers(1, 12)), int(rng.integers(1, 15))
    W = _random_sparse(rng, n_rows, n_cols, density=float(rng.uniform(0.1, 0.9)))
    v = _wild(rng, n_cols)
    expected = _ref_dots(W, v)
    got = exact_row_dots(W, v)
    assert len(got) == n_rows
    assert all(isinstance(q, Fraction) for q in got)
    assert got == expected


def test_exact_row_dots_beats_float_cancellation():
    # float: (1e16 + 1) - 1e16 == 0, exact: 1; and 1e300 * 1e300 overflows in float.
    W = sp.csr_matrix(np.array([[1e16, 1.0, -1e16], [1e300, 0.0, 0.0], [1e-300, 0.0, -1e-300], [0.0, 0.0, 0.0]]))
    v = np.array([1.0, 1.0, 1.0])
    got = exact_row_dots(W, v)
    assert got[0] == 1
    assert (1e16 + 1.0) - 1e16 == 0.0  # the float answer (left to right) is wrong
    got = exact_row_dots(W, np.array([1e300, 1.0, 2.0]))
    assert got[1] == Fraction(1e300) * Fraction(1e300)
    assert got[2] == Fraction(1e-300) * Fraction(1e300) - Fraction(1e-300) * 2
    assert got[3] == 0


def test_exact_row_dots_all_empty_and_no_rows():
    assert exact_row_dots(sp.csr_matrix((3, 4)), np.ones(4)) == [0, 0, 0]
    assert exact_row_dots(sp.csr_matrix((0, 4)), np.ones(4)) == []


def test_exact_row_dots_unsorted_and_duplicate_indices():
    # non-canonical CSR: unsorted column indices and a duplicate (duplicates add up)
    data = np.array([1e300, -3.5, 2.0**-1074, -1e300, 7.0])
    indices = np.array([2, 0, 1, 2, 0])
    indptr = np.array([0, 3, 5])
    W = sp.csr_matrix((data, indices, indptr), shape=(2, 3))
    v = np.array([0.5, 3.0, 1e-10])
    expected = [
        Fraction(1e300) * Fraction(1e-10) + Fraction(-3.5) * Fraction(0.5) + Fraction(2.0**-1074) * 3,
        Fraction(-1e300) * Fraction(1e-10) + 7 * Fraction(0.5),
    ]
    assert exact_row_dots(W, v) == expected


# --------------------------------------------------------------------------- collapsed_rows


def _small_problem(seed: int, style: str):
    rng = np.random.default_rng(seed)
    n_vars, n_in, n_rows = 4, 10, 6
    group = np.array([0, 0, 1, -1, 2, 2, 2, -1, 3, -1], dtype=np.int64)
    values = ref._values if style != "wild" else None
    if style == "wild":
        x, baseline = _wild(rng, n_in), _wild(rng, n_in)
        W = np.where(rng.random((n_rows, n_in)) < 0.6, _wild(rng, n_rows * n_in).reshape(n_rows, n_in), 0.0)
        bias = _wild(rng, n_rows)
    else:
        x, baseline = values(rng, n_in, style), values(rng, n_in, style)
        W = np.where(rng.random((n_rows, n_in)) < 0.6, rng.normal(size=(n_rows, n_in)), 0.0)
        bias = rng.normal(size=n_rows)
    baseline[baseline == 0] = 0.3  # a non-zero baseline everywhere
    W[-1] = 0.0  # an empty row: only the bias
    W[-2] = 0.0
    W[-2, [3, 7]] = [1.5, -2.0]  # a row reading only ungrouped inputs
    return ref.make_problem(W, x, baseline, group, 0.5, bias=bias, names=[f"m_r0_c{j}" for j in range(n_vars)])


@pytest.mark.parametrize("style", ["normal", "dyadic", "wild"])
@pytest.mark.parametrize("seed", range(3))
def test_collapsed_rows_matches_fraction_reference(seed, style):
    problem = _small_problem(seed, style)
    assert (problem.group < 0).any() and (problem.baseline != 0).all() and problem.gamma == 0.5
    expected = ref.ref_collapsed(problem)
    got = collapsed_rows(problem, np.arange(problem.n_constraints))
    assert len(got) == problem.n_constraints
    for (coef, r), (ecoef, er) in zip(got, expected):
        assert coef == ecoef
        assert r == er
        assert all(a != 0 for a in coef.values())
    # the empty row: r = gamma * b - b
    b = Fraction(float(problem.bias[-1]))
    assert got[-1] == ({}, Fraction(1, 2) * b - b)
    # the ungrouped-only row has no coefficients
    assert got[-2][0] == {}
    # a subset of rows, in the order asked for
    rows = np.array([4, 0, 2])
    assert collapsed_rows(problem, rows) == [expected[i] for i in rows]


@pytest.mark.parametrize("seed", range(3))
def test_collapsed_rows_reproduce_eq3_slack_for_every_mask(seed):
    """sum_{j on} a_j - r is exactly (masked - gamma * original) of Eq. 3."""
    problem = _small_problem(seed, "normal")
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    for mask in ref.all_masks(problem.n_vars):
        on = set(np.flatnonzero(mask).tolist())
        slack = [sum((a for j, a in coef.items() if j in on), Fraction(0)) - r for coef, r in rows]
        assert slack == ref.ref_slacks(problem, mask)
