"""Exact, solver-independent check of a mask against Eq. 3.

The masked pre-activations are recomputed from the input-level data of the
:class:`~smug.ir.MaskProblem` (weights, input, masked-out value) in exact
rational arithmetic; nothing that a backend produced is trusted.  A mask that
fails is never reported as valid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from smug.ir import MaskProblem
from smug.solver import network_exact
from smug.solver.exact import exact_row_dots, exact_values


@dataclass(frozen=True)
class Certificate:
    valid: bool
    mask_size: int
    n_constraints: int
    violated: tuple[int, ...]  # rows whose strict inequality fails
    min_slack: Fraction | None  # smallest exact (masked - gamma * original); None without rows
    seconds: float

    def summary(self) -> dict:
        return {
            "valid": self.valid,
            "checked": "exact rational arithmetic over the float64 encoding",
            "mask_size": self.mask_size,
            "constraints": self.n_constraints,
            "violated": list(self.violated[:20]),
            "n_violated": len(self.violated),
            "min_slack": None if self.min_slack is None else float(self.min_slack),
            "seconds": round(self.seconds, 4),
        }


def exact_slacks(problem: MaskProblem, mask: np.ndarray) -> list[Fraction]:
    """(masked pre-activation) - gamma * (original pre-activation), exactly, per row."""
    masked = exact_row_dots(problem.weights, problem.masked_input(mask))
    original = exact_row_dots(problem.weights, problem.x)
    bias = exact_values(problem.bias)
    g = Fraction(problem.gamma)
    return [m + b - g * (o + b) for m, o, b in zip(masked, original, bias)]


def _as_mask(mask: np.ndarray, n_vars: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (n_vars,):
        raise ValueError(f"mask has shape {mask.shape}, expected ({n_vars},)")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("a mask holds only 0 and 1")
    return mask.astype(bool)


def _certificate(slacks: dict[int, Fraction], mask: np.ndarray, t0: float) -> Certificate:
    """Valid iff every exact slack is > 0 (strict inequalities)."""
    violated = tuple(i for i, s in slacks.items() if s <= 0)
    return Certificate(valid=not violated, mask_size=int(mask.sum()), n_constraints=len(slacks), violated=violated,
                       min_slack=min(slacks.values()) if slacks else None, seconds=time.perf_counter() - t0)


def certify(problem: MaskProblem, mask: np.ndarray) -> Certificate:
    """Check every strict inequality of Eq. 3 for ``mask`` exactly."""
    t0 = time.perf_counter()
    mask = _as_mask(mask, problem.n_vars)
    return _certificate(dict(enumerate(exact_slacks(problem, mask))), mask, t0)


def exact_logits(problem, v: np.ndarray) -> list[Fraction]:
    """Exact forward pass of a NetworkProblem on a float input vector (integer arithmetic:
    :mod:`smug.solver.network_exact`)."""
    return network_exact.exact_logits(problem.layers, v)


def certify_network(problem, mask: np.ndarray) -> Certificate:
    """Exact check that the masked input keeps the target: logit[t] - logit[j] > delta for all j."""
    t0 = time.perf_counter()
    mask = _as_mask(mask, problem.n_vars)
    logits = exact_logits(problem, problem.masked_input(mask))
    delta = Fraction(problem.delta)
    t = problem.target
    return _certificate({j: logits[t] - logits[j] - delta for j in range(len(logits)) if j != t}, mask, t0)
