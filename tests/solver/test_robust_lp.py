"""Safe LP bounds of the robust verifier's branch and bound (Neumaier-Shcherbina)."""

from __future__ import annotations

import numpy as np

from _robust_reference import tiny_network
from smug.solver.robust import RobustQuery
from smug.solver.robust_bounds import layer_bounds
from smug.solver.robust_lp import MarginLP, safe_bound


def test_safe_bound_holds_for_any_multipliers():
    """The safe dual bound is below the objective at every network point, whatever ``y`` is."""
    problem = tiny_network(3)
    q = RobustQuery(problem, 0.125)
    fixed = np.zeros(problem.n_vars, bool)
    box = q.outer_box(fixed)
    bounds = layer_bounds(problem.layers, box)
    lp = MarginLP(problem.layers, problem.x, q.free_inputs(fixed), box, bounds)
    rng = np.random.default_rng(0)
    c = rng.normal(size=lp.lay.n_cols)
    lo, hi, clo, chi = lp.node({})
    A = lp.A
    for _ in range(20):
        v = rng.uniform(*box)
        col = np.zeros(lp.lay.n_cols)
        col[:lp.lay.n_free] = v[lp.free_idx]
        h = v
        for k, layer in enumerate(problem.layers):
            z = layer.weight @ h + layer.bias
            col[lp.lay.z[k]:lp.lay.z[k] + len(z)] = z
            if layer.relu:
                h = np.maximum(z, 0)
                col[lp.lay.a[k]:lp.lay.a[k] + len(z)] = h
        bound = safe_bound(c, A, lo, hi, clo, chi, rng.normal(size=A.shape[0]) * 0.1)
        assert bound <= float(c @ col) + 1e-9  # the float point is a network point up to rounding
