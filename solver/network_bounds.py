"""Interval bounds of every pre-activation over all masks (the mask is the only variable).

Each input entry is either ``x_p`` or ``baseline_p``, so interval arithmetic through
the layers gives cheap, tight bounds; they decide which ReLUs are stable and set the
big-M constants.  Bounds are widened by a rigorous float64 error allowance, so they
stay sound for the exact semantics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smug.ir import NetworkProblem

U = 2.0**-53


@dataclass(frozen=True)
class LayerBounds:
    lower: np.ndarray  # pre-activation lower bounds
    upper: np.ndarray

    @property
    def unstable(self) -> np.ndarray:
        return (self.lower < 0) & (self.upper > 0)


def interval_bounds(problem: NetworkProblem) -> list[LayerBounds]:
    grouped = problem.group >= 0
    lo = np.where(grouped, np.minimum(problem.x, problem.baseline), problem.x)
    hi = np.where(grouped, np.maximum(problem.x, problem.baseline), problem.x)
    out = []
    for layer in problem.layers:
        W = layer.weight.tocsr()
        Wp, Wn = W.maximum(0), W.minimum(0)
        zl = Wp @ lo + Wn @ hi + layer.bias
        zu = Wp @ hi + Wn @ lo + layer.bias
        n = int(np.diff(W.indptr).max(initial=0)) + 2
        slack = 2 * n * U * (abs(W) @ np.maximum(abs(lo), abs(hi)) + abs(layer.bias)) + 1e-300
        zl, zu = zl - slack, zu + slack
        out.append(LayerBounds(zl, zu))
        lo, hi = (np.maximum(zl, 0), np.maximum(zu, 0)) if layer.relu else (zl, zu)
    return out
