"""Exact problem decomposition: mask variables that share no constraint are
independent, so the optimum is the sum of the optima of connected components."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from smug.ir import MaskProblem


@dataclass(frozen=True)
class Component:
    rows: np.ndarray  # constraint indices
    vars: np.ndarray  # mask-variable indices


def incidence(problem: MaskProblem) -> sp.csr_matrix:
    """0/1 (n_constraints, n_vars): row i reads an input of variable j (structural)."""
    W = problem.weights.tocoo()
    g = problem.group[W.col]
    keep = g >= 0
    m = sp.csr_matrix((np.ones(keep.sum()), (W.row[keep], g[keep])), shape=(problem.n_constraints, problem.n_vars))
    m.data[:] = 1.0
    return m


def split(problem: MaskProblem) -> tuple[list[Component], np.ndarray]:
    """Connected components over rows and variables, and the rows that read no variable."""
    B = incidence(problem)
    n_r, n_v = B.shape
    graph = sp.bmat([[None, B], [B.T, None]], format="csr") if n_r and n_v else sp.csr_matrix((n_r + n_v, n_r + n_v))
    _, labels = connected_components(graph, directed=False)
    row_lab, var_lab = labels[:n_r], labels[n_r:]
    used_vars = np.asarray(B.sum(axis=0)).ravel() > 0
    comps = []
    for lab in np.unique(row_lab):
        rows = np.flatnonzero(row_lab == lab)
        vars_ = np.flatnonzero((var_lab == lab) & used_vars)
        if len(vars_):
            comps.append(Component(rows=rows, vars=vars_))
    free_rows = np.flatnonzero(np.asarray(B.sum(axis=1)).ravel() == 0)
    return comps, free_rows
