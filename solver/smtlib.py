"""SMT-LIB2 text of a mask problem, for debugging and independent re-solving.

The dump uses the exact rational coefficients (no rounding), Boolean mask
variables named after their block (``m_r{row}_c{col}``, top-left pixel), one
commented assertion per kept neuron, and either z3's ``minimize`` extension
(``z3 FILE`` prints the optimum) or, with ``bound=K``, the pure SMT-LIB2 assertion
``(<= count K)`` that any solver reads.  Rows that read no mask variable are left out
when they hold and refused (:class:`ConstantRowError`) when they do not.

:func:`network_to_smtlib` writes a whole-network problem (Eq. 6): the first
pre-activations over the mask, every later layer over the previous activations,
ReLUs fixed by the interval bounds where stable and ``ite`` elsewhere, and one margin
row per other class.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable

import numpy as np

from smug.ir import MaskProblem, NetworkProblem
from smug.solver.exact import collapsed_rows

Row = tuple[dict[int, Fraction], Fraction]


class ConstantRowError(ValueError):
    """A row that reads no mask variable fails: no mask can satisfy the problem."""


def _num(q: Fraction) -> str:
    q = Fraction(q)
    mag = f"{abs(q.numerator)}.0" if q.denominator == 1 else f"(/ {abs(q.numerator)}.0 {q.denominator}.0)"
    return f"(- {mag})" if q < 0 else mag


def _sum(terms: list[str]) -> str:
    if not terms:
        return "0.0"
    return terms[0] if len(terms) == 1 else "(+ " + " ".join(terms) + ")"


def exact_rows(problem: MaskProblem) -> tuple[list[Row], list[int]]:
    """Every row collapsed exactly (:func:`collapsed_rows`) and the indices of the rows a dump
    writes: those that read a mask variable.  A row that reads none is ``0 > r``: it is left
    out when it holds, and raises :class:`ConstantRowError` (naming it) when it does not."""
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    kept = []
    for i, (coef, r) in enumerate(rows):
        if coef:
            kept.append(i)
        elif not 0 > r:
            raise ConstantRowError(f"row {problem.constraint_name(i)} reads no mask variable and fails "
                                   f"(0 > {r} is false): no mask satisfies this problem")
    return rows, kept


def count_term(names: list[str]) -> str:
    """``sum_j ite(m_j, 1, 0)``: the mask size."""
    return _sum([f"(ite {n} 1.0 0.0)" for n in names])


def _objective(names: list[str], objective: bool, bound: int | None) -> list[str]:
    if bound is not None:
        return ["; bound: the mask has at most K blocks (pure SMT-LIB2)",
                f"(assert (<= {count_term(names)} {_num(Fraction(int(bound)))}))", "(check-sat)", "(get-model)"]
    if objective:
        return ["; objective (z3 extension, not SMT-LIB2): minimise the mask size",
                "(minimize " + count_term(names) + ")", "(check-sat)", "(get-objectives)"]
    return []


def to_smtlib(problem: MaskProblem, header: Iterable[str] = (), objective: bool = True,
              bound: int | None = None) -> str:
    """The whole problem (Eq. 3 + minimise, or ``count <= bound``) as SMT-LIB2 text."""
    rows, kept = exact_rows(problem)
    used = sorted({j for i in kept for j in rows[i][0]})
    names = problem.var_names
    out = [f"; {line}" for line in header]
    out += [
        f"; {len(kept)} constraints over {len(used)} of {problem.n_vars} mask variables; gamma = {problem.gamma}"
        + (f"; {problem.n_constraints - len(kept)} constant rows hold and are left out"
           if len(kept) < problem.n_constraints else ""),
        "; constraint: sum of If(m, coefficient, 0) > gamma*original - (masked value with every block off)",
        "(set-logic QF_LRA)",
    ]
    out += [f"(declare-const {names[j]} Bool)" for j in used]
    for i in kept:
        coef, r = rows[i]
        terms = [f"(ite {names[j]} {_num(a)} 0.0)" for j, a in sorted(coef.items())]
        out.append(f"; {problem.constraint_name(i)}")
        out.append(f"(assert (> {_sum(terms)} {_num(r)}))")
    out += _objective([names[j] for j in used], objective, bound)
    return "\n".join(out) + "\n"


def network_to_smtlib(problem: NetworkProblem, header: Iterable[str] = (), objective: bool = True,
                      bound: int | None = None) -> str:
    """Eq. 6 as SMT-LIB2: ``z{l}_{i}`` pre-activations, ``a{l}_{i}`` ReLU outputs (exact rationals)."""
    from smug.solver.network_bounds import interval_bounds
    from smug.solver.network_z3 import first_layer_exact

    bounds = interval_bounds(problem)
    first = first_layer_exact(problem)
    used = sorted({j for coef, _ in first for j in coef})
    names = problem.var_names
    out = [f"; {line}" for line in header]
    out += [f"; whole network: {len(problem.layers)} layers, {len(used)} of {problem.n_vars} mask variables read, "
            f"target {problem.target}, delta = {problem.delta}",
            "; z{l}_{i}: pre-activation of unit i of layer l; a{l}_{i}: its ReLU output; interval bounds "
            "over all masks in the comments fix the stable units",
            "(set-logic QF_LRA)"]
    out += [f"(declare-const {names[j]} Bool)" for j in used]
    prev: list[str] = []
    for li, (layer, b) in enumerate(zip(problem.layers, bounds)):
        n = layer.weight.shape[0]
        out += [f"(declare-const z{li}_{i} Real)" for i in range(n)]
        if layer.relu:
            out += [f"(declare-const a{li}_{i} Real)" for i in range(n)]
        W = layer.weight.tocsr()
        for i in range(n):
            if li == 0:
                coef, const = first[i]
                terms = [f"(ite {names[j]} {_num(a)} 0.0)" for j, a in sorted(coef.items())] + [_num(const)]
            else:
                lo, hi = W.indptr[i], W.indptr[i + 1]
                terms = [f"(* {_num(Fraction(float(w)))} {prev[k]})" for w, k in zip(W.data[lo:hi], W.indices[lo:hi])]
                terms.append(_num(Fraction(float(layer.bias[i]))))
            out.append(f"; z{li}_{i} in [{float(b.lower[i])!r}, {float(b.upper[i])!r}]")
            out.append(f"(assert (= z{li}_{i} {_sum(terms)}))")
        if layer.relu:
            for i in range(n):
                if b.lower[i] >= 0:
                    out += [f"; relu a{li}_{i}: stable on", f"(assert (= a{li}_{i} z{li}_{i}))"]
                elif b.upper[i] <= 0:
                    out += [f"; relu a{li}_{i}: stable off", f"(assert (= a{li}_{i} 0.0))"]
                else:
                    out += [f"; relu a{li}_{i}: unstable",
                            f"(assert (= a{li}_{i} (ite (> z{li}_{i} 0.0) z{li}_{i} 0.0)))"]
            prev = [f"a{li}_{i}" for i in range(n)]
        else:
            prev = [f"z{li}_{i}" for i in range(n)]
    t = problem.target
    for j in range(len(prev)):
        if j != t:
            out += [f"; margin_{t}_{j}", f"(assert (> (- {prev[t]} {prev[j]}) {_num(Fraction(problem.delta))}))"]
    out += _objective([names[j] for j in used], objective, bound)
    return "\n".join(out) + "\n"
