"""Masks that keep the decision: refine SMUG's constraints until the masked input keeps it.

SMUG's Eq. 3 holds the kept first-layer neurons above ``gamma`` times their original
value; nothing in it holds the class, and on photos the minimal mask often loses it.
This mode solves a ladder of ever stronger constraint sets and checks each minimal mask
by a forward pass of the masked input (the IG ranking is reused: a step costs one solve):

1. the requested ``(k, gamma)``;
2. ``gamma`` raised along :data:`GAMMAS` with the same ``k``;
3. ``k`` multiplied by :data:`K_FACTOR` at the strongest ``gamma`` (more neurons held near
   their original value), up to every positively attributed neuron;
4. once a step keeps the decision, :data:`BISECTIONS` bisection steps on ``gamma`` at that
   ``k``, between the last failing value (or the requested one) and the keeping one,
   keeping the smallest mask that keeps the decision.

Measured on Lite0 photos (docs/benchmarks.md, bench/keep_class.py): the decision comes back
near ``gamma`` = 0.99, and holding more neurons is cheaper than holding every one (all
~150,000 positive neurons at once did not finish in a minute).  Each step's mask is proven
minimal (or verified, on a timeout) *for that step's constraints* and certified exactly;
the answer reports every step and the constraint set of the mask it returns.  When no step
keeps the decision before the deadline, the answer says so and returns the step whose
masked input came closest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from smug.deadline import Deadline

KEEP_BUDGET = 4  # the whole ladder gets this many solver timeouts (or the request's deadline, if sooner)
GAMMAS = (0.6, 0.9, 0.99)
K_FACTOR = 3
BISECTIONS = 2


@dataclass(frozen=True)
class KeepClass:
    """Options of the keep-class mode (``min_confidence``: the target's probability, or the
    explained text score, on the masked input must also reach it)."""

    min_confidence: float | None = None

    def __post_init__(self) -> None:
        p = self.min_confidence
        if p is not None and not (isinstance(p, (int, float)) and math.isfinite(p) and 0.0 < p < 1.0):
            raise ValueError(f"min_confidence must lie in (0, 1), got {p!r}")


@dataclass(frozen=True)
class Verdict:
    """The model on a masked input: does it keep the decision, how confidently, by what margin."""

    keeps: bool
    confidence: float | None  # the target's probability (text: the explained score)
    margin: float | None  # float32 logit margin over the runner-up (text: distance of the rating to 0.5)


@dataclass(frozen=True)
class Step:
    """One solved constraint set of the ladder."""

    top_k: int
    gamma: float
    status: str
    objective: int | None
    lower_bound: int
    keeps_class: bool
    confidence: float | None
    margin: float | None
    seconds: float


@dataclass(frozen=True)
class Attempt:
    encoding: object  # the step's encoding (SmugEncoding or TextEncoding)
    solution: object  # its Solution
    step: Step


def ladder(top_k: int, gamma: float, n_positive: int) -> list[tuple[int, float]]:
    """The (k, gamma) constraint sets to try in order (no repeats; ``top_k`` is at most the
    number of positively attributed neurons, the only ones SMUG keeps)."""
    k = min(top_k, n_positive)
    out = [(k, g) for g in dict.fromkeys((gamma, *(g for g in GAMMAS if g > gamma)))]
    strongest = out[-1][1]
    while k < n_positive:
        k = min(n_positive, k * K_FACTOR)
        out.append((k, strongest))
    return [(k, g) for k, g in out if k > 0]


def refine(top_k: int, gamma: float, n_positive: int, rebuild: Callable[[int, float], object],
           solve: Callable[[object], object], check: Callable[[object, object], Verdict],
           deadline: Deadline) -> tuple[Attempt, list[Step]]:
    """Solve the ladder until a mask keeps the decision, then bisect gamma; the chosen attempt
    (smallest mask that keeps the decision, else the closest) and every step.  ``rebuild(k, g)``
    gives the encoding of a constraint set, ``check(encoding, mask)`` the model's verdict."""
    steps: list[Step] = []
    failed_at: dict[int, float] = {}
    best: Attempt | None = None
    closest: Attempt | None = None
    first: list[Attempt] = []  # the first attempt, answered when no step produced a mask

    def attempt(k: int, g: float) -> Attempt:
        t0 = time.perf_counter()
        enc = rebuild(k, g)
        sol = solve(enc.problem)
        v = check(enc, sol.mask) if sol.mask is not None else Verdict(False, None, None)
        step = Step(k, g, sol.status, sol.objective, sol.lower_bound, v.keeps, v.confidence, v.margin,
                    round(time.perf_counter() - t0, 4))
        steps.append(step)
        a = Attempt(enc, sol, step)
        first[:] = first or [a]
        return a

    for k, g in ladder(top_k, gamma, n_positive):
        if steps and deadline.expired():
            break
        a = attempt(k, g)
        if a.step.keeps_class:
            best = a
            break
        failed_at[k] = g
        if a.solution.mask is not None and (closest is None or (a.step.confidence or 0) > (closest.step.confidence or 0)):
            closest = a
    if best is not None and best.step.gamma > gamma:
        lo, hi = failed_at.get(best.step.top_k, gamma), best.step.gamma
        for _ in range(BISECTIONS):
            if deadline.expired():
                break
            a = attempt(best.step.top_k, round((lo + hi) / 2, 6))
            if a.step.keeps_class:
                hi = a.step.gamma
                if a.step.objective is not None and a.step.objective <= best.step.objective:
                    best = a
            else:
                lo = a.step.gamma
    return best or closest or first[0], steps


def report(steps: list[Step], chosen: Step, options: KeepClass, top_k: int) -> dict:
    """The keep-class part of an answer: the final constraint set (the ``top_k`` and ``gamma`` that
    rebuild the chosen step's encoding: ``top_k`` is the request's own where the step kept its
    number of neurons, :func:`ladder` clips it to the positive ones) and every step."""
    return {"kept": chosen.keeps_class, "constraints": {"top_k": top_k,
                                                         "gamma": chosen.gamma, "layers": "first layer"},
            "min_confidence": options.min_confidence, "steps": [s.__dict__ for s in steps],
            "note": None if chosen.keeps_class else
            "no constraint set tried before the deadline kept the decision; this is the closest step"}


def keep_decision(enc, layer, x: np.ndarray, config, baseline: float, check: Callable[[object, object], Verdict],
                  solve: Callable[[object], object], deadline: Deadline, options: KeepClass):
    """Run :func:`refine` on a first-layer or text encoding ``enc`` (Eq. 3 over ``layer`` at input
    ``x``): each constraint set reuses ``enc``'s IG ranking.  (encoding, solution, report) of the
    chosen step."""
    from smug.encoders.smug import build_problem, select_top_k  # the request module imports this one: stay light

    attribution = enc.ig.attribution.ravel()
    n_positive = int((attribution > 0).sum())

    def rebuild(k: int, gamma: float):
        if gamma == config.gamma and k == min(config.top_k, n_positive):
            return enc
        neurons = select_top_k(attribution, k)
        problem, constrained = build_problem(layer, x, neurons, enc.grid, gamma, config.form, baseline)
        return replace(enc, problem=problem, neurons=neurons, attribution=attribution[neurons],
                       constrained=constrained)

    chosen, steps = refine(config.top_k, config.gamma, n_positive, rebuild, solve, check, deadline)
    top_k = config.top_k if chosen.step.top_k == min(config.top_k, n_positive) else chosen.step.top_k
    return chosen.encoding, chosen.solution, report(steps, chosen.step, options, top_k)
