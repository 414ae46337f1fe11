"""The robustness question of a set ``E`` as text another engine reads (issue 30).

:func:`robust_smtlib` writes "is there an input in the box of ``E`` that some class reaches?"
as SMT-LIB2 over exact rationals (QF_LRA): ``v{p}`` the free input entries with their exact
box, every fixed entry folded into the first layer exactly, ``z{l}_{i}`` / ``a{l}_{i}`` the
pre-activations and ReLU outputs (stable units fixed by the rigorous bounds of
:mod:`smug.solver.robust_bounds`, the others an ``ite``), and one disjunction over the other
classes of ``z_t - z_j <= delta``.  ``unsat`` means ``E`` is robust; ``sat`` gives a
counterexample.  :func:`robust_lp` writes the same question as a MILP in CPLEX LP format
(floats: a second opinion, not a proof): big-M ReLUs with the same bounds, and one binary per
class choosing the class that reaches the target.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable

import numpy as np

from smug.solver.robust import RobustQuery
from smug.solver.robust_bounds import layer_bounds
from smug.solver.smtlib import _num, _sum


def _first_layer(query: RobustQuery, fixed: np.ndarray) -> tuple[np.ndarray, list[tuple[dict[int, Fraction], Fraction]]]:
    """The free entries and, per unit of the first layer, its exact coefficients on them and its
    exact constant (bias plus every fixed entry's product)."""
    problem = query.problem
    free = query.free_inputs(fixed)
    W = problem.layers[0].weight.tocsr()
    x = [Fraction(v) for v in problem.x.tolist()]
    rows = []
    for i in range(W.shape[0]):
        lo, hi = W.indptr[i], W.indptr[i + 1]
        coef: dict[int, Fraction] = {}
        const = Fraction(float(problem.layers[0].bias[i]))
        for w, p in zip(W.data[lo:hi].tolist(), W.indices[lo:hi].tolist()):
            if free[p]:
                coef[p] = coef.get(p, Fraction(0)) + Fraction(w)
            else:
                const += Fraction(w) * x[p]
        rows.append((coef, const))
    return np.flatnonzero(free), rows


def robust_smtlib(query: RobustQuery, fixed: np.ndarray, header: Iterable[str] = ()) -> str:
    """The question of the module docstring as SMT-LIB2 (``(check-sat)`` at the end)."""
    problem = query.problem
    fixed = np.asarray(fixed, bool)
    free_idx, first = _first_layer(query, fixed)
    lo, hi = query.exact_box(fixed)
    bounds = layer_bounds(problem.layers, query.outer_box(fixed))
    out = [f"; {line}" for line in header]
    out += [f"; robust explanation check: {int(fixed.sum())} of {problem.n_vars} features fixed, "
            f"{len(free_idx)} input entries free, epsilon {query.epsilon}, domain {list(query.domain)}, "
            f"target {problem.target}, delta {problem.delta}",
            "; sat: an input in the box reaches the target (a counterexample); unsat: the set is robust",
            "(set-logic QF_LRA)"]
    for p in free_idx.tolist():
        out += [f"(declare-const v{p} Real)", f"(assert (and (<= {_num(lo[p])} v{p}) (<= v{p} {_num(hi[p])})))"]
    prev: list[str] = []
    for li, layer in enumerate(problem.layers):
        n = layer.weight.shape[0]
        W = layer.weight.tocsr()
        for i in range(n):
            out.append(f"(declare-const z{li}_{i} Real)")
            if li == 0:
                coef, const = first[i]
                terms = [f"(* {_num(a)} v{p})" for p, a in sorted(coef.items())] + [_num(const)]
            else:
                a, b = W.indptr[i], W.indptr[i + 1]
                terms = [f"(* {_num(Fraction(w))} {prev[k]})" for w, k in zip(W.data[a:b].tolist(), W.indices[a:b].tolist())]
                terms.append(_num(Fraction(float(layer.bias[i]))))
            out.append(f"(assert (= z{li}_{i} {_sum(terms)}))")
        if not layer.relu:
            prev = [f"z{li}_{i}" for i in range(n)]
            continue
        for i in range(n):
            out.append(f"(declare-const a{li}_{i} Real)")
            if bounds.lower[li][i] >= 0:
                out.append(f"(assert (= a{li}_{i} z{li}_{i})) ; stable on")
            elif bounds.upper[li][i] <= 0:
                out.append(f"(assert (= a{li}_{i} 0.0)) ; stable off")
            else:
                out.append(f"(assert (= a{li}_{i} (ite (> z{li}_{i} 0.0) z{li}_{i} 0.0)))")
        prev = [f"a{li}_{i}" for i in range(n)]
    t, delta = problem.target, _num(Fraction(problem.delta))
    reach = [f"(<= (- {prev[t]} {prev[j]}) {delta})" for j in range(len(prev)) if j != t]
    out += [f"(assert (or {' '.join(reach)}))" if len(reach) > 1 else f"(assert {reach[0]})", "(check-sat)"]
    return "\n".join(out) + "\n"


def robust_lp(query: RobustQuery, fixed: np.ndarray, header: Iterable[str] = ()) -> str:
    """The question of the module docstring as a MILP in CPLEX LP format (floats): feasible when
    some class reaches the target (a candidate counterexample), infeasible when ``E`` is robust."""
    problem = query.problem
    fixed = np.asarray(fixed, bool)
    free = query.free_inputs(fixed)
    lo_box, hi_box = query.outer_box(fixed)
    bounds = layer_bounds(problem.layers, (lo_box, hi_box))
    lo_box, hi_box = lo_box.tolist(), hi_box.tolist()  # Python floats: their repr is the LP's number
    lower, upper = [b.tolist() for b in bounds.lower], [b.tolist() for b in bounds.upper]
    out = [f"\\ {line}" for line in header]
    out += ["\\ robust explanation check (floats): feasible = a candidate counterexample, infeasible = robust",
            "Minimize", " obj: 0 v_none", "Subject To"]
    cons: list[str] = []
    bnds: list[str] = []
    binaries: list[str] = []

    def lin(terms: list[tuple[float, str]]) -> str:
        return " ".join(f"{'+' if c >= 0 else '-'} {abs(c)!r} {name}" for c, name in terms)

    src: list[str] = []
    for p in range(problem.x.size):
        if free[p]:
            bnds.append(f" {lo_box[p]!r} <= v{p} <= {hi_box[p]!r}")
            src.append(f"v{p}")
        else:
            src.append("")
    for li, layer in enumerate(problem.layers):
        W = layer.weight.tocsr()
        l, u = lower[li], upper[li]
        nxt = []
        for i in range(W.shape[0]):
            a, b = W.indptr[i], W.indptr[i + 1]
            const = float(layer.bias[i])
            terms = []
            for w, k in zip(W.data[a:b].tolist(), W.indices[a:b].tolist()):
                if li == 0 and not free[k]:
                    const += w * float(problem.x[k])
                else:
                    terms.append((w, src[k]))
            z = f"z{li}_{i}"
            cons.append(f" d{li}_{i}: {z} {lin([(-c, n) for c, n in terms])} = {const!r}")
            bnds.append(f" {l[i]!r} <= {z} <= {u[i]!r}")
            if not layer.relu:
                nxt.append(z)
                continue
            h = f"a{li}_{i}"
            if l[i] >= 0:
                cons.append(f" r{li}_{i}: {h} - {z} = 0")
            elif u[i] <= 0:
                cons.append(f" r{li}_{i}: {h} = 0")
            else:  # h >= z, h >= 0, h <= z - l (1 - s), h <= u s
                s = f"s{li}_{i}"
                binaries.append(s)
                cons += [f" r{li}_{i}a: {h} - {z} >= 0", f" r{li}_{i}b: {h} - {z} + {-l[i]!r} {s} <= {-l[i]!r}",
                         f" r{li}_{i}c: {h} - {u[i]!r} {s} <= 0"]
            bnds.append(f" 0 <= {h} <= {max(0.0, u[i])!r}")
            nxt.append(h)
        src = nxt
    t = problem.target
    others = [j for j in range(len(src)) if j != t]
    big = upper[-1][t] - min(lower[-1][j] for j in others) + 1.0
    for j in others:  # c_j = 1: z_t - z_j <= delta
        cons.append(f" reach{j}: {src[t]} - {src[j]} + {big!r} c{j} <= {problem.delta + big!r}")
        binaries.append(f"c{j}")
    cons.append(" some: " + " + ".join(f"c{j}" for j in others) + " >= 1")
    out += cons + ["Bounds", " v_none = 0"] + bnds + ["Binary"] + [f" {b}" for b in binaries] + ["End"]
    return "\n".join(out) + "\n"
