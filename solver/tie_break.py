"""The canonical tie-break among minimum masks (issue 31: one answer per request).

Definition: among every mask of the optimum's size that satisfies the problem, the least read
as a bit string over the variables in increasing order (the first variable most significant,
off before on), i.e. the one that leaves out the lowest-numbered variables it can.

:func:`least_minimum` is the greedy that finds it from any minimum mask: each variable still on
in the current mask, in increasing order, is asked off under the decisions already made; a mask
that answers the question becomes the current one (its variable is decided off), a proof that
none exists decides it on.  Every answer is a fact about the problem, not about a solver's
state, so any engine, process or starting optimum ends at the same mask.  The engines that
answer the questions: z3 (:func:`smug.solver.z3_backend.canonical`), python-sat
(:func:`smug.solver.rc2_backend.canonical_sat`) and the whole network's enumeration
(:mod:`smug.solver.canonical_network`).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

UNDECIDED = "undecided"  # an engine stopped (deadline, memory) before it answered a question

#: ``ask(decided, j)``: a minimum mask (over the variables, in their order) that keeps every
#: decision of ``decided`` (variable -> on) and has ``j`` off; None when none exists; UNDECIDED.
Ask = Callable[[dict[int, bool], int], "np.ndarray | None | str"]


def least_minimum(variables, mask: np.ndarray, deadline: float, ask: Ask) -> tuple[np.ndarray, bool]:
    """The canonical minimum mask from ``mask`` (a minimum one, proven) over ``variables`` (increasing),
    and whether the greedy completed before ``deadline`` (if not: the latest minimum mask)."""
    variables = [int(v) for v in variables]
    if variables != sorted(variables):
        raise ValueError("the tie-break reads the variables in increasing order")
    current = np.asarray(mask, dtype=bool).copy()
    k = int(current.sum())
    decided: dict[int, bool] = {}
    for t, j in enumerate(variables):
        if sum(decided.values()) == k:  # every kept variable is decided: the rest are off already
            break
        if current[t]:
            if time.perf_counter() >= deadline:
                return current, False
            found = ask(decided, j)
            if isinstance(found, str):
                return current, False
            if found is not None:
                current = np.asarray(found, dtype=bool)
        decided[j] = bool(current[t])
    return current, True
