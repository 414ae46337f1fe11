"""Problem decomposition: numpy's component labels against scipy's ``connected_components`` (the
plain reference), and ``split`` on a problem with known components."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from smug.solver.components import component_labels


def canonical(labels: np.ndarray) -> list[int]:
    """Labels renumbered by first appearance (two labellings of one partition become equal)."""
    seen: dict[int, int] = {}
    return [seen.setdefault(int(x), len(seen)) for x in labels]


@pytest.mark.parametrize("seed", range(30))
def test_labels_are_scipys_components(seed):
    r = np.random.default_rng(seed)
    n = int(r.integers(1, 60))
    m = int(r.integers(0, 2 * n))
    a, b = r.integers(0, n, m), r.integers(0, n, m)
    labels = component_labels(n, a, b)
    _, ref = connected_components(sp.coo_matrix((np.ones(m), (a, b)), shape=(n, n)), directed=False)
    assert canonical(labels) == canonical(ref)
    assert all(labels[v] == min(np.flatnonzero(labels == labels[v])) for v in range(n))  # the smallest node


def test_long_paths_and_no_edges():
    n = 1000
    order = np.random.default_rng(0).permutation(n)  # one path through the nodes in a random order
    assert (component_labels(n, order[:-1], order[1:]) == 0).all()
    assert component_labels(5, np.array([], int), np.array([], int)).tolist() == [0, 1, 2, 3, 4]
