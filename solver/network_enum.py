"""Exact optimum of a whole-network mask problem by exhaustive search over small masks.

MNIST minimal masks have 0-4 pixels, and only pixels that differ from the masked-out
value matter (an entry equal to its baseline is the same on or off: an exactly
irrelevant variable).  So all masks of size 0, 1, 2, ... over the relevant variables
are few enough to evaluate in float64 batches with a rigorous error bound: a mask
whose float margin fails by more than the bound fails exactly; any other is checked
in exact arithmetic.  The first size with an exactly valid mask is the optimum, and
every smaller size was refuted mask by mask: an exact proof.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from math import comb

import numpy as np

from smug.ir import NetworkProblem
from smug.solver.certificate import certify_network
from smug.solver.network_bounds import LayerBounds

U = 2.0**-53


@dataclass(frozen=True)
class EnumResult:
    mask: np.ndarray | None  # the optimum (None: not reached)
    lower_bound: int  # every mask smaller than this was refuted exactly
    masks_checked: int
    exact_checks: int
    seconds: float


def relevant_variables(problem: NetworkProblem) -> np.ndarray:
    """Variables owning an input that differs from its baseline and has a weight."""
    W = problem.layers[0].weight.tocsc()
    has_weight = np.diff(W.indptr) > 0
    differs = (problem.x != problem.baseline) & has_weight & (problem.group >= 0)
    return np.unique(problem.group[differs])


def masks_up_to(n: int, size: int) -> int:
    return sum(comb(n, k) for k in range(size + 1))


def _gamma(n: int) -> float:
    return n * U / (1 - n * U)


def enumerate_optimum(problem: NetworkProblem, bounds: list[LayerBounds], max_size: int, deadline: float,
                      lower_bound: int = 0, chunk: int = 100_000) -> EnumResult:
    """Search sizes ``lower_bound .. max_size`` in order; stop at the first exactly valid mask."""
    t0 = time.perf_counter()
    R = relevant_variables(problem)
    first = problem.layers[0]
    W1 = first.weight.tocsr()
    grouped = problem.group >= 0
    fixed = np.where(grouped, problem.baseline, problem.x)
    c = W1 @ fixed + first.bias
    # column j of A: the change of the first pre-activation when variable R[j] is switched on
    import scipy.sparse as sp

    cols = np.flatnonzero(grouped)
    P = sp.csr_matrix(((problem.x - problem.baseline)[cols], (cols, problem.group[cols])),
                      shape=(W1.shape[1], problem.n_vars))
    A = (W1 @ P).toarray()[:, R]
    amax = np.maximum(abs(problem.x), abs(problem.baseline))
    n_in = int(np.diff(W1.indptr).max(initial=0))
    base_err = abs(W1) @ amax + abs(first.bias)
    t = problem.target
    checked = exact = 0
    lb = lower_bound
    for k in range(lower_bound, max_size + 1):
        if time.perf_counter() > deadline:
            break
        # rigorous absolute error bounds of the float evaluation, per layer
        E = _gamma(n_in + k + 4) * (k + 2) * base_err
        H = None
        errs = [E]
        for layer, b in zip(problem.layers[1:], bounds[:-1]):
            prev_abs = np.maximum(abs(b.lower), abs(b.upper))
            H = np.maximum(prev_abs, 0)
            Wa = abs(layer.weight)
            n = int(np.diff(layer.weight.tocsr().indptr).max(initial=0))
            E = Wa @ E + _gamma(n + 2) * (Wa @ H + abs(layer.bias))
            errs.append(E)
        out_abs = np.maximum(abs(bounds[-1].lower), abs(bounds[-1].upper))
        margin_err = (E[t] + E + 2 * U * (out_abs[t] + out_abs)) * (1 + 1e-6) + 1e-300
        combos = itertools.combinations(range(len(R)), k)
        while True:
            block = list(itertools.islice(combos, chunk))
            if not block:
                break
            idx = np.array(block, dtype=np.int64).reshape(len(block), k)
            z = c[None, :] + (A[:, idx].sum(axis=2).T if k else 0.0)
            h = z
            for li, layer in enumerate(problem.layers):
                if li > 0:
                    h = (layer.weight @ h.T).T + layer.bias
                if layer.relu:
                    h = np.maximum(h, 0.0)
            margins = h[:, [t]] - h  # (n_masks, n_classes)
            margins[:, t] = np.inf
            maybe = np.all(margins + margin_err[None, :] > problem.delta, axis=1)
            checked += len(block)
            for row in np.flatnonzero(maybe):
                exact += 1
                mask = np.zeros(problem.n_vars, dtype=bool)
                mask[R[idx[row]]] = True
                if certify_network(problem, mask).valid:
                    return EnumResult(mask, k, checked, exact, time.perf_counter() - t0)
            if time.perf_counter() > deadline:
                return EnumResult(None, lb, checked, exact, time.perf_counter() - t0)
        lb = k + 1
    return EnumResult(None, lb, checked, exact, time.perf_counter() - t0)
