"""Plain reference computations for the solver tests (no smug code is used here).

Everything is evaluated with :class:`fractions.Fraction` straight from the float64
arrays, following Eq. 3 as written in ``smug.ir``:

    v_p = x_p if group[p] == -1 or m[group[p]] else baseline_p
    row i holds  <=>  sum_p W[i,p] v_p + b_i  >  gamma * (sum_p W[i,p] x_p + b_i)

Test files load this module by path (the suite runs with ``--import-mode=importlib``,
so the tests folder is not importable as a package).
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from smug.ir import DenseLayer, MaskProblem, NetworkProblem

def F(v) -> Fraction:
    return Fraction(float(v))


# --------------------------------------------------------------------------- Eq. 3


def ref_row_values(problem: MaskProblem, v: np.ndarray) -> list[Fraction]:
    """Exact W @ v, row by row, from the stored non-zeros."""
    W = sp.csr_matrix(problem.weights, copy=True)
    out = []
    for i in range(W.shape[0]):
        lo, hi = W.indptr[i], W.indptr[i + 1]
        out.append(sum((F(w) * F(v[p]) for w, p in zip(W.data[lo:hi], W.indices[lo:hi])), Fraction(0)))
    return out


def ref_masked_input(problem: MaskProblem, mask) -> list[float]:
    mask = [bool(b) for b in mask]
    return [
        float(problem.x[p]) if (g < 0 or mask[g]) else float(problem.baseline[p])
        for p, g in enumerate(problem.group.tolist())
    ]


def ref_slacks(problem: MaskProblem, mask) -> list[Fraction]:
    masked = ref_row_values(problem, np.asarray(ref_masked_input(problem, mask)))
    orig = ref_row_values(problem, problem.x)
    g = F(problem.gamma)
    return [m + F(b) - g * (o + F(b)) for m, o, b in zip(masked, orig, problem.bias)]


def ref_valid(problem: MaskProblem, mask) -> bool:
    return all(s > 0 for s in ref_slacks(problem, mask))


def ref_violated(problem: MaskProblem, mask) -> tuple[int, ...]:
    return tuple(i for i, s in enumerate(ref_slacks(problem, mask)) if s <= 0)


def ref_collapsed(problem: MaskProblem) -> list[tuple[dict[int, Fraction], Fraction]]:
    """a_j = sum_{p in j} W_p (x_p - baseline_p);  r = gamma (Wx + b) - (masked value, all off)."""
    W = sp.csr_matrix(problem.weights, copy=True)
    g = F(problem.gamma)
    out = []
    for i in range(W.shape[0]):
        lo, hi = W.indptr[i], W.indptr[i + 1]
        coef: dict[int, Fraction] = {}
        orig = fixed = Fraction(0)
        for w, p in zip(W.data[lo:hi], W.indices[lo:hi]):
            w, xp, bp, grp = F(w), F(problem.x[p]), F(problem.baseline[p]), int(problem.group[p])
            orig += w * xp
            if grp >= 0:
                coef[grp] = coef.get(grp, Fraction(0)) + w * (xp - bp)
                fixed += w * bp
            else:
                fixed += w * xp
        b = F(problem.bias[i])
        r = g * (orig + b) - (fixed + b)
        out.append(({j: a for j, a in coef.items() if a != 0}, r))
    return out


def ref_components(problem: MaskProblem) -> list[tuple[list[int], list[int]]]:
    """(rows, variables) of each connected component of the structural row/variable graph."""
    parent = list(range(problem.n_vars))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    W = sp.csr_matrix(problem.weights, copy=True)
    row_vars = []
    for i in range(W.shape[0]):
        vs = sorted({int(problem.group[p]) for p in W.indices[W.indptr[i]:W.indptr[i + 1]] if problem.group[p] >= 0})
        row_vars.append(vs)
        for a, b in zip(vs, vs[1:]):
            parent[find(a)] = find(b)
    comps: dict[int, tuple[list[int], list[int]]] = {}
    for i, vs in enumerate(row_vars):
        if vs:
            comps.setdefault(find(vs[0]), ([], []))[0].append(i)
    for root, (rows, vars_) in comps.items():
        vars_.extend(j for j in range(problem.n_vars) if find(j) == root and any(j in row_vars[i] for i in rows))
    return list(comps.values())


def ref_minimum(problem: MaskProblem, rows_subset=None) -> tuple[int | None, np.ndarray | None]:
    """Brute-force minimum mask size (ascending popcount) over exact integer-scaled rows."""
    rows = ref_collapsed(problem)
    if rows_subset is not None:
        rows = [rows[i] for i in rows_subset]
    den = 1
    for coef, r in rows:
        for q in list(coef.values()) + [r]:
            den = max(den, q.denominator)  # all denominators are powers of two
    int_rows = [({j: int(a * den) for j, a in coef.items()}, int(r * den)) for coef, r in rows]
    for coef, r in rows:  # scaling is exact
        assert all((a * den).denominator == 1 for a in coef.values()) and (r * den).denominator == 1
    n = problem.n_vars
    for k in range(n + 1):
        for on in itertools.combinations(range(n), k):
            s = set(on)
            if all(sum(a for j, a in coef.items() if j in s) > r for coef, r in int_rows):
                mask = np.zeros(n, dtype=bool)
                mask[list(on)] = True
                return k, mask
    return None, None


def all_masks(n: int):
    for bits in itertools.product((0, 1), repeat=n):
        yield np.array(bits, dtype=np.int64)


# --------------------------------------------------------------------------- problems


def make_problem(W, x, baseline, group, gamma, bias=None, names=None, row_names=()) -> MaskProblem:
    W = np.asarray(W, dtype=np.float64)
    n_vars = (int(np.max(group)) + 1 if len(group) else 0) if names is None else len(names)
    return MaskProblem(
        weights=sp.csr_matrix(W),
        bias=np.zeros(W.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64),
        x=np.asarray(x, dtype=np.float64),
        baseline=np.asarray(baseline, dtype=np.float64),
        group=np.asarray(group, dtype=np.int64),
        gamma=float(gamma),
        var_names=tuple(names) if names is not None else tuple(f"m_r0_c{j}" for j in range(n_vars)),
        constraint_names=tuple(row_names),
    )


def _values(rng: np.random.Generator, size: int, style: str) -> np.ndarray:
    if style == "dyadic":  # small dyadic values: exact ties (slack == 0) are common
        return rng.choice([-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0], size=size)
    if style == "wild":  # tiny and huge magnitudes mixed with ordinary ones
        base = rng.normal(size=size)
        scale = rng.choice([1.0, 1.0, 1.0, 1e-300, 1e-150, 1e150, 2.0**-1074 * 7], size=size)
        return base * scale
    return rng.normal(size=size)


def random_problem(
    seed: int,
    n_vars: int,
    n_rows: int,
    wide_rows: int = 0,
    style: str = "normal",
    n_ungrouped: int = 2,
    gamma: float | None = None,
    feasible: bool = True,
    max_narrow: int = 4,
) -> MaskProblem:
    """A tiny random Eq. 3 problem.

    Every variable owns 1-3 inputs, ``n_ungrouped`` inputs belong to no variable.
    Narrow rows read the inputs of 1..max_narrow variables (plus maybe ungrouped ones);
    ``wide_rows`` rows read every variable.  With ``feasible`` every row's original value
    is made exactly > 0 (by flipping the row's sign), so the all-on mask satisfies Eq. 3.
    """
    rng = np.random.default_rng(seed)
    group = np.concatenate([np.full(rng.integers(1, 4), j) for j in range(n_vars)] + [np.full(n_ungrouped, -1)])
    group = rng.permutation(group).astype(np.int64)
    n_in = len(group)
    x = _values(rng, n_in, style)
    baseline = _values(rng, n_in, style) if rng.random() < 0.7 else np.zeros(n_in)
    W = np.zeros((n_rows, n_in))
    for i in range(n_rows):
        if i < wide_rows:
            chosen = np.arange(n_vars)
        else:
            k = int(rng.integers(1, min(max_narrow, n_vars) + 1))
            chosen = rng.choice(n_vars, size=k, replace=False)
        cols = np.flatnonzero(np.isin(group, chosen) | ((group < 0) & (rng.random(n_in) < 0.5)))
        W[i, cols] = _values(rng, len(cols), style)
        W[i, cols[W[i, cols] == 0]] = 1.0  # keep the sparsity pattern as chosen
    bias = _values(rng, n_rows, "normal") * 0.5 if rng.random() < 0.5 else np.zeros(n_rows)
    if gamma is None:
        gamma = float(rng.choice([0.0, 0.25, 0.5, 0.75, rng.uniform(0, 0.99)]))
    if feasible:
        for i in range(n_rows):
            orig = sum((F(W[i, p]) * F(x[p]) for p in range(n_in)), Fraction(0)) + F(bias[i])
            if orig == 0:
                bias[i] += 1.0 if bias[i] == 0 else abs(bias[i])
                orig = sum((F(W[i, p]) * F(x[p]) for p in range(n_in)), Fraction(0)) + F(bias[i])
            if orig < 0:
                W[i], bias[i] = -W[i], -bias[i]
            assert orig != 0, "could not make the row feasible"
    return make_problem(W, x, baseline, group, gamma, bias=bias,
                        names=[f"m_r0_c{j}" for j in range(n_vars)],
                        row_names=[f"neuron_{seed}_{i}" for i in range(n_rows)])


# ---- whole networks (paper 003 Appendix A) ----------------------------------------------
def reference_logits(problem, mask):
    """Plain Fraction forward pass of the masked input."""
    v = [Fraction(float(a)) for a in problem.masked_input(mask)]
    for layer in problem.layers:
        W = layer.weight.toarray()
        v = [sum((Fraction(float(w)) * h for w, h in zip(row, v)), Fraction(float(b)))
             for row, b in zip(W, layer.bias)]
        if layer.relu:
            v = [max(q, Fraction(0)) for q in v]
    return v


def reference_minimum(problem):
    for k in range(problem.n_vars + 1):
        for on in itertools.combinations(range(problem.n_vars), k):
            mask = np.zeros(problem.n_vars, bool)
            mask[list(on)] = True
            z = reference_logits(problem, mask)
            t = problem.target
            if all(z[t] - z[j] > Fraction(problem.delta) for j in range(len(z)) if j != t):
                return k
    return None


def random_network(seed, n_vars=7, hidden=6, classes=3, delta=0.0):
    r = np.random.default_rng(seed)
    n_in = n_vars * 2
    W1, W2 = r.normal(size=(hidden, n_in)), r.normal(size=(classes, hidden))
    b1, b2 = r.normal(size=hidden) * 0.5, r.normal(size=classes) * 0.5
    layers = (DenseLayer(sp.csr_matrix(W1), b1, True), DenseLayer(sp.csr_matrix(W2), b2, False))
    x = r.uniform(0, 1, n_in)
    x[r.random(n_in) < 0.2] = 0.0  # some entries equal the baseline
    group = np.repeat(np.arange(n_vars), 2)
    probe = NetworkProblem(layers, x, np.zeros(n_in), group, tuple(f"m{j}" for j in range(n_vars)), 0, delta)
    target = int(np.argmax(probe.forward(x)))
    return NetworkProblem(layers, x, np.zeros(n_in), group, probe.var_names, target, delta)
