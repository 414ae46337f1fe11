"""WCNF (weighted partial MaxSAT, the MaxSAT evaluation's classic ``p wcnf`` format) of a
first-layer or text problem.

Each row is compiled by :func:`smug.solver.z3_backend.threshold_clauses`, the exact
clause compilation smug's own solver uses: hard clauses (weight ``top``) that hold
exactly when the row does, plus one soft clause ``-m_j`` (weight 1) per mask variable,
so the MaxSAT optimum is the minimal mask.  The compilation enumerates the ``2**n``
subset sums of a row, so rows over more than :data:`WCNF_ARITY` variables are refused
(write smt2 or lp instead).  ``c`` comment lines carry the variable numbers' names and
each row's name before its clauses.
"""

from __future__ import annotations

from typing import Iterable

from smug.ir import MaskProblem
from smug.solver.smtlib import exact_rows
from smug.solver.z3_backend import threshold_clauses

WCNF_ARITY = 16  # widest row compiled to clauses (2**16 exact subset sums)


def to_wcnf(problem: MaskProblem, header: Iterable[str] = ()) -> str:
    """Hard clauses of every row and one soft clause per variable, as WCNF text."""
    rows, kept = exact_rows(problem)
    wide = [i for i in kept if len(rows[i][0]) > WCNF_ARITY]
    if wide:
        i = wide[0]
        raise ValueError(f"wcnf needs rows over at most {WCNF_ARITY} mask variables; {len(wide)} rows are wider "
                         f"(row {problem.constraint_name(i)} reads {len(rows[i][0])}): use --format smt2 or lp")
    used = sorted({j for i in kept for j in rows[i][0]})
    number = {j: k + 1 for k, j in enumerate(used)}
    body: list[str] = []
    n_hard = 0
    top = len(used) + 1
    for i in kept:
        clauses = threshold_clauses(*rows[i])
        body.append(f"c row {problem.constraint_name(i)} {len(clauses)}")
        for clause in clauses:
            body.append(" ".join([str(top)] + [str(number[j] if value else -number[j]) for j, value in clause] + ["0"]))
        n_hard += len(clauses)
    soft = [f"1 {-number[j]} 0" for j in used]
    out = [f"c {line}" for line in header]
    out += [f"c {len(kept)} rows over {len(used)} of {problem.n_vars} mask variables as {n_hard} hard clauses "
            f"(weight {top}) and {len(used)} soft clauses -m (weight 1); gamma = {problem.gamma}"]
    out += [f"c var {number[j]} {problem.var_names[j]}" for j in used]
    out.append(f"p wcnf {len(used)} {n_hard + len(used)} {top}")
    return "\n".join(out + body + soft) + "\n"
