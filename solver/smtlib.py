"""SMT-LIB2 text of a mask problem, for debugging and independent re-solving.

The dump uses the exact rational coefficients (no rounding), Boolean mask
variables named after their block (``m_r{row}_c{col}``, top-left pixel), one
commented assertion per kept neuron, and z3's ``minimize`` extension; ``z3 FILE``
prints the optimum.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable

import numpy as np

from smug.ir import MaskProblem
from smug.solver.exact import collapsed_rows


def _num(q: Fraction) -> str:
    mag = f"{abs(q.numerator)}.0" if q.denominator == 1 else f"(/ {abs(q.numerator)}.0 {q.denominator}.0)"
    return f"(- {mag})" if q < 0 else mag


def _sum(terms: list[str]) -> str:
    if not terms:
        return "0.0"
    return terms[0] if len(terms) == 1 else "(+ " + " ".join(terms) + ")"


def to_smtlib(problem: MaskProblem, header: Iterable[str] = (), objective: bool = True) -> str:
    """The whole problem (Eq. 3 + minimise) as SMT-LIB2 text."""
    rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    used = sorted({j for coef, _ in rows for j in coef})
    names = problem.var_names
    out = [f"; {line}" for line in header]
    out += [
        f"; {problem.n_constraints} constraints over {len(used)} of {problem.n_vars} mask variables; gamma = {problem.gamma}",
        "; constraint: sum of If(m, coefficient, 0) > gamma*original - (masked value with every block off)",
        "(set-logic QF_LRA)",
    ]
    out += [f"(declare-const {names[j]} Bool)" for j in used]
    for i, (coef, r) in enumerate(rows):
        terms = [f"(ite {names[j]} {_num(a)} 0.0)" for j, a in sorted(coef.items())]
        out.append(f"; {problem.constraint_name(i)}")
        out.append(f"(assert (> {_sum(terms)} {_num(r)}))")
    if objective:
        out.append("(minimize " + _sum([f"(ite {names[j]} 1.0 0.0)" for j in used]) + ")")
        out.append("(check-sat)")
        out.append("(get-objectives)")
    return "\n".join(out) + "\n"
