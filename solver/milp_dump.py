"""LP and MPS text of every problem kind: the MILP models smug's HiGHS passes build.

First-layer and text problems use :func:`smug.solver.highs_backend.milp_model`, whole
networks :func:`smug.solver.network_milp.network_milp_model` (big-M ReLUs from the
interval bounds).  Both formats hold floats: every coefficient is the float64 value
HiGHS writes (the exact rationals are in the smt2 dump), and a strict row ``> r`` is
written ``>= r + margin * max(1, |row|_inf)``; the default ``MARGIN`` is small
(1e-6; smug's own candidate pass uses 1e-4), so the optimum is a float estimate of the exact
one, not a proof.  Rows that read no mask variable are left out when they hold and
refused when they fail (:func:`smug.solver.smtlib.exact_rows`).
"""

from __future__ import annotations

import os
import tempfile
import re
from typing import Iterable

import numpy as np

from smug.ir import LinearForm, MaskProblem, NetworkProblem, linear_form
from smug.solver.smtlib import exact_rows
from smug.common import quiet_highs

FORMATS = ("lp", "mps")
MARGIN = 1e-6  # strict rows: ">= r + MARGIN * max(1, |row|_inf)" (HiGHS tolerances are 1e-9)
COMMENT = {"lp": "\\", "mps": "*"}


def _write(lp, fmt: str) -> str:
    h = quiet_highs()
    h.passModel(lp)
    fd, path = tempfile.mkstemp(suffix="." + fmt)
    os.close(fd)
    try:
        h.writeModel(path)
        with open(path) as f:
            return f.read()
    finally:
        os.unlink(path)


def _with_header(text: str, fmt: str, header: Iterable[str]) -> str:
    c = COMMENT[fmt]
    return "".join(f"{c} {line}\n" for line in header) + text


def _names(names) -> list[str]:
    return [re.sub(r"[^A-Za-z0-9_.]", "_", n) for n in names]


def mask_milp(problem: MaskProblem, margin: float = MARGIN):
    """The first-layer/text MILP (a ``highspy.HighsLp``) without constant rows, with names."""
    from smug.solver.highs_backend import milp_model

    _, kept = exact_rows(problem)
    form = linear_form(problem)
    keep = np.asarray(kept, dtype=np.int64)
    sub = LinearForm(A=form.A[keep], const=form.const[keep], rhs=form.rhs[keep])
    lp = milp_model(sub, margin)
    lp.col_names_ = list(problem.var_names)
    lp.row_names_ = _names(problem.constraint_name(i) for i in kept)
    return lp


def network_milp(problem: NetworkProblem, margin: float = MARGIN):
    """The whole-network big-M MILP (a ``highspy.HighsLp``) with named columns and rows."""
    from smug.solver.network_bounds import interval_bounds
    from smug.solver.network_milp import network_milp_model

    bounds = interval_bounds(problem)
    lp = network_milp_model(problem, bounds, margin)
    cols = list(problem.var_names)
    rows: list[str] = []
    for li, (layer, b) in enumerate(zip(problem.layers, bounds)):
        n = layer.weight.shape[0]
        cols += [f"z{li}_{i}" for i in range(n)]
        rows += [f"def_z{li}_{i}" for i in range(n)]
        if layer.relu:
            cols += [f"a{li}_{i}" for i in range(n)]
            rows += [f"relu_{li}_{i}" for i in range(n)]
            unstable = np.flatnonzero(b.unstable)
            cols += [f"s{li}_{i}" for i in unstable]
            rows += [f"bigm_lo_{li}_{i}" for i in unstable] + [f"bigm_hi_{li}_{i}" for i in unstable]
    t = problem.target
    rows += [f"margin_{t}_{j}" for j in range(problem.n_classes) if j != t]
    lp.col_names_ = cols
    lp.row_names_ = rows
    return lp


def to_milp(problem: MaskProblem | NetworkProblem, fmt: str = "lp", header: Iterable[str] = (),
            margin: float = MARGIN) -> str:
    """LP or MPS text (HiGHS's writer) of the problem's MILP, the header lines as comments."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown MILP format {fmt!r}; use one of {FORMATS}")
    lp = network_milp(problem, margin) if isinstance(problem, NetworkProblem) else mask_milp(problem, margin)
    notes = [f"floats: coefficients are float64 as written by HiGHS; strict rows '> r' written '>= r + "
             f"{margin} * max(1, |row|_inf)'; written with 17 significant digits (float64 round-trips)",
             "the exact rationals are in the smt2 dump of the same request"]
    return _with_header(_write(lp, fmt), fmt, list(header) + notes)
