"""Exact problem decomposition: mask variables that share no constraint are
independent, so the optimum is the sum of the optima of connected components.

The components are found by :func:`component_labels` (hooking and pointer jumping in numpy) rather
than ``scipy.sparse.csgraph``: that package imports ``scipy.sparse.linalg`` and ``scipy.linalg``,
about 0.2 s at every start and as much again at exit (docs/benchmarks.md, start-up; issue 29).
``tests/solver/test_components.py`` holds it to ``scipy.sparse.csgraph.connected_components``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

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


def component_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For nodes ``0..n-1`` and undirected edges ``a[i] - b[i]``: each node's component, labelled by
    its smallest node.  Invariant: ``label[v] <= v`` and ``label[v]`` is in ``v``'s component; each
    round hooks every edge's two labels to the smaller (labels are roots: fully jumped), then jumps
    pointers until every label is a root; it ends when every edge's ends share a label."""
    label = np.arange(n)
    a, b = np.asarray(a, np.intp), np.asarray(b, np.intp)
    while True:
        la, lb = label[a], label[b]
        low = np.minimum(la, lb)
        hooked = label.copy()
        np.minimum.at(hooked, la, low)
        np.minimum.at(hooked, lb, low)
        while not np.array_equal(hooked[hooked], hooked):
            hooked = hooked[hooked]
        if np.array_equal(hooked, label):
            return label
        label = hooked


def split(problem: MaskProblem) -> tuple[list[Component], np.ndarray]:
    """Connected components over rows and variables, and the rows that read no variable."""
    B = incidence(problem)
    n_r, n_v = B.shape
    edges = B.tocoo()
    labels = component_labels(n_r + n_v, edges.row, n_r + edges.col)
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
