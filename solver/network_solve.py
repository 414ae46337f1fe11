"""Minimal masks for the whole-network problem (paper 003 Appendix A): find, prove, certify.

Backends (one interface, each returns a :class:`~smug.solver.solve.Solution`):

* ``highs``: big-M MILP candidate (certified exactly), then an exact proof;
* ``enum``: exhaustive search over small masks with an error-bounded float filter
  and exact checks (:mod:`smug.solver.network_enum`);
* ``z3``: exact LRA with an ascending cardinality search;
* ``auto``: enumeration of the sizes whose masks number at most ``QUICK_MASKS``
  (about a second), then of every further size below the greedy start that the
  enumeration's measured speed fits into the time left; then a HiGHS candidate, the
  sizes below it enumerated while they fit and the rest proven by z3.

Every backend starts from a greedy mask (variables switched on one at a time, the one
that raises the smallest float margin most first, then a shrinking pass); it also orders
the enumeration, most promising variable first.  ``status`` is ``optimal`` only with an
exact proof; on a timeout the best verified mask comes back as ``feasible`` with the best
proven lower bound.
"""

from __future__ import annotations

import time
from math import comb

import numpy as np

from smug.deadline import DEFAULT_TIMEOUT
from smug.events import Improved, Progress
from smug.ir import NetworkProblem
from smug.solver.backends import WHOLE_NETWORK
from smug.solver.certificate import certify_network
from smug.solver.network_bounds import (
    BoundContext, LayerBounds, crown_bounds, first_layer_on_mask, interval_bounds, margin_lines, unstable_counts,
)
from smug.solver.network_enum import (
    ENUM_MEMORY_MB, EnumResult, class_margins, enumerate_optimum, forward_columns, mask_cost, masks_up_to,
    relevant_variables,
)
from smug.solver.solve import Solution, check_request

NETWORK_BACKENDS = WHOLE_NETWORK  # alias: the registry in smug.solver.backends owns the list
MAX_ENUMERATED_MASKS = 20_000_000  # on the 784-32-10 MLP; other networks: the same work (masks x mask_cost)
QUICK_MASKS = 2_000_000
MLP_MASK_COST = 400  # mask_cost of the MLP the two counts were measured on
FIT_SHARE = 0.7  # of the time left, what a further enumeration may be predicted to take
MIN_MEASURED_MASKS = 1000  # masks enumerated before their speed predicts the next sizes
HIGHS_SHARE = 0.5  # of the time left, HiGHS's when a start mask exists already
MARGIN_BATCH = 64  # masks per float forward pass of the greedy start

EMPTY_KEEPS = "the empty mask keeps the class (checked exactly)"
EXHAUSTIVE = "exhaustive: every smaller mask refuted exactly"
EXHAUSTIVE_NO_MASK = "exhaustive: no mask over the relevant variables keeps the class (exact)"
ENUM_STOPPED = "enumeration stopped at the deadline"
ENUM_MEMORY = "enumeration ran out of memory (the memory cap)"
Z3_MEMORY = "z3 ran out of memory (the memory cap)"
Z3_PROVEN = "z3 exact LRA: unsat below the mask size"
Z3_STOPPED = "z3 stopped before a proof"
Z3_NO_MASK = "z3 exact LRA: unsat for every mask"
NOT_PROVEN = "HiGHS candidate, not proven (prove=False)"
CERTIFY_FAILED = "mask failed the exact check"
NUMERICALLY_UNSAFE = ("numerically unsafe in float64: masks the float filter could not decide within its proven "
                      "error bound were decided in exact arithmetic (stats['exact_fallbacks'])")


class _Run:
    """One :func:`solve_network` call: the problem and its bounds, the clock, and the answers."""

    def __init__(self, problem: NetworkProblem, backend: str, timeout: float,
                 progress: Progress | None, memory_mb: float = ENUM_MEMORY_MB):
        self.problem, self.backend, self.progress, self.memory_mb = problem, backend, progress, memory_mb
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + timeout
        self.timings: dict[str, float] = {}
        box = interval_bounds(problem)
        self.context = BoundContext.of(problem)  # shared by the bounds of every mask size
        self.bounds = crown_bounds(problem, box, context=self.context)
        before, after = unstable_counts(problem, box), unstable_counts(problem, self.bounds)
        self.stats = {"unstable_relus": sum(after), "relus": sum(l.weight.shape[0] for l in problem.layers if l.relu),
                      "unstable_relus_interval": sum(before),
                      "unstable_per_layer": {"interval": before, "crown": after,
                                             "relus": [l.weight.shape[0] for l in problem.layers if l.relu]}}
        self.timings["bounds"] = time.perf_counter() - self.t0
        self.relevant = relevant_variables(problem)
        self.stats["fallbacks"] = []
        self.stats["sizes_refuted_by_bounds"] = 0
        self._sized: dict[int, tuple] = {}
        self.enum_seconds, self.enum_masks = 0.0, 0  # the enumeration's measured speed
        self.order = self.relevant  # the enumeration's variable order: best single margin first, once known

    def sized(self, k: int) -> tuple[list[LayerBounds], tuple[np.ndarray, np.ndarray]]:
        """Bounds and margin lines valid for every mask of at most ``k`` variables (cached)."""
        if k not in self._sized:
            t = time.perf_counter()
            bounds = (self.bounds if k >= self.n_relevant else
                      crown_bounds(self.problem, self.bounds, max_size=k, context=self.context))
            self._sized[k] = (bounds, margin_lines(self.problem, bounds, self.context)[:2])
            self.timings["sized_bounds"] = self.timings.get("sized_bounds", 0.0) + time.perf_counter() - t
        return self._sized[k]

    def work(self, size: int) -> float:
        """Enumeration work for every mask up to ``size``, in MLP-mask units (see ``MAX_ENUMERATED_MASKS``)."""
        return masks_up_to(self.n_relevant, size) * mask_cost(self.problem, size) / MLP_MASK_COST

    def reachable(self, lower: int, limit: int, max_masks: int) -> int:
        """The largest size ``s <= limit`` such that enumerating sizes ``lower .. s`` is predicted to
        take at most ``FIT_SHARE`` of the time left (from the speed measured so far; before any
        measurement, at most ``max_masks`` MLP-mask units of work); ``lower - 1`` when none fits."""
        left = FIT_SHARE * (self.deadline - time.perf_counter())
        per_mask = self.enum_seconds / self.enum_masks if self.enum_masks >= MIN_MEASURED_MASKS else None
        size, spent = lower - 1, 0.0
        while size < limit:
            if per_mask is None:
                if self.work(size + 1) > max_masks:
                    break
            else:
                spent += comb(self.n_relevant, size + 1) * per_mask
                if spent > left:
                    break
            size += 1
        return size

    def fell_back(self, stage: str, why: str, lower: int) -> None:
        self.stats["fallbacks"].append({"stage": stage, "reason": why, "lower_bound": int(lower)})

    @property
    def n_relevant(self) -> int:
        return len(self.relevant)

    def margins(self, masks: list[np.ndarray]) -> np.ndarray:
        """The smallest float margin (target logit minus another) of each mask, minus the rounding
        allowance used to call a float pass clear of delta."""
        p = self.problem
        layers = [(layer.weight, layer.bias, layer.relu) for layer in p.layers]
        out = []
        for at in range(0, len(masks), MARGIN_BATCH):
            h = forward_columns(layers, np.stack([p.masked_input(m) for m in masks[at:at + MARGIN_BATCH]], axis=1))
            out.append(class_margins(h, p.target).min(axis=0) - 1e-6 * (1 + abs(h).max(axis=0)))
        return np.concatenate(out)

    def grow(self) -> np.ndarray | None:
        """Greedy forward selection: from the empty mask, switch on the relevant variable that raises
        the smallest float margin most, until it clears delta (often far smaller than shrinking
        the full mask).  Kept only if it passes exactly."""
        mask = np.zeros(self.problem.n_vars, dtype=bool)
        for _ in range(self.n_relevant):
            if time.perf_counter() > self.deadline:
                return None
            free = self.relevant[~mask[self.relevant]]
            trial = np.repeat(mask[None, :], len(free), axis=0)
            trial[np.arange(len(free)), free] = True
            margins = self.margins(list(trial))
            if not mask.any():
                self.order = free[np.argsort(-margins, kind="stable")]
            best = int(np.argmax(margins))
            mask[free[best]] = True
            if margins[best] > self.problem.delta:
                return mask if certify_network(self.problem, mask).valid else None
        return None

    def shrink(self, mask: np.ndarray | None) -> np.ndarray | None:
        """One greedy pass over ``mask``: drop each variable (weakest first-layer effect first) while
        the float margins stay clearly above delta; the result is kept only if it passes exactly."""
        if mask is None:
            return None
        p = self.problem
        effect = np.asarray(abs(first_layer_on_mask(p)[0]).sum(axis=0)).ravel()
        keep = mask.copy()
        for j in sorted(np.flatnonzero(mask), key=lambda j: effect[j]):
            if time.perf_counter() > self.deadline:
                break
            keep[j] = False
            if self.margins([keep])[0] <= p.delta:
                keep[j] = True
        return keep if keep.sum() < mask.sum() and certify_network(p, keep).valid else mask

    def report(self, mask: np.ndarray | None, lower: int) -> None:
        if self.progress is not None and mask is not None:
            self.progress(Improved(int(mask.sum()), int(lower), time.perf_counter() - self.t0, mask.copy()))

    def done(self, mask: np.ndarray | None, lower: int, proof: str, proven: bool) -> Solution:
        """The answer for ``mask`` (None: no verified mask), certified exactly."""
        t = time.perf_counter()
        cert = certify_network(self.problem, mask) if mask is not None else None
        self.timings["certify"] = time.perf_counter() - t
        self.timings["total"] = time.perf_counter() - self.t0
        common = dict(timings=self.timings, stats=self.stats)
        if mask is None:
            return Solution.unknown(self.backend, proof, lower, **common)
        if not cert.valid:  # cannot happen: every mask was certified when found
            return Solution.unknown(self.backend, CERTIFY_FAILED, lower, cert, **common)
        if proven:
            return Solution.optimal(mask, self.backend, proof, cert, **common)
        return Solution.feasible(mask, lower, self.backend, proof, cert, **common)

    def infeasible(self, proof: str) -> Solution:
        self.timings["total"] = time.perf_counter() - self.t0
        return Solution.infeasible(self.backend, proof, timings=self.timings, stats=self.stats)

    def enumerate(self, max_size: int, lower: int, key: str | None = None) -> EnumResult:
        """Exhaustive search over masks of at most ``max_size`` relevant variables (timed as ``key``)."""
        t = time.perf_counter()
        res = enumerate_optimum(self.problem, self.sized, max_size, self.deadline, lower_bound=lower,
                                memory_mb=self.memory_mb, order=self.order)
        self.stats["sizes_refuted_by_bounds"] += res.refuted_by_lines
        self.enum_seconds += res.search_seconds  # per mask, without each size's set-up
        self.enum_masks += res.masks_checked
        if key is not None:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t
        self.stats["enumerated_masks"] = self.stats.get("enumerated_masks", 0) + res.masks_checked
        undecided = res.exact_checks - (res.mask is not None)
        if undecided:  # the float filter's rigorous error bound could not decide these masks
            self.stats["exact_fallbacks"] = self.stats.get("exact_fallbacks", 0) + int(undecided)
            self.stats["numerics"] = NUMERICALLY_UNSAFE
        if res.stopped == "memory":
            self.fell_back(key or "enum", "enumeration ran out of memory (the memory cap)", res.lower_bound)
        return res

    def enumerate_fitting(self, lower: int, limit: int, max_masks: int, key: str) -> EnumResult:
        """Sizes ``lower .. limit`` one at a time while the next one is predicted to fit (see
        :meth:`reachable`; the speed is measured again after each): the first exactly valid
        mask, or the sizes refuted (``lower_bound``) and why it stopped."""
        res = EnumResult(None, lower, 0, 0, 0.0)
        while lower <= limit and self.reachable(lower, lower, max_masks) >= lower:
            res = self.enumerate(lower, lower, key)
            if res.mask is not None or res.stopped is not None:
                return res
            lower = res.lower_bound
        return res

    def exhaust(self, fallback: np.ndarray | None, lower: int, key: str | None = None) -> Solution:
        """Enumeration over every size: the optimum, a proof that none exists, or ``fallback``
        with the bound reached at the deadline."""
        res = self.enumerate(self.n_relevant, lower, key)
        if res.mask is not None:
            return self.done(res.mask, res.lower_bound, EXHAUSTIVE, True)
        if res.lower_bound > self.n_relevant:
            return self.infeasible(EXHAUSTIVE_NO_MASK)
        return self.done(fallback, res.lower_bound, ENUM_STOPPED if res.stopped != "memory" else ENUM_MEMORY, False)

    def z3(self, start: np.ndarray | None, lower: int, key: str | None = None) -> Solution:
        """z3's exact ascending cardinality search from ``start`` (timed as ``key``)."""
        from smug.solver.network_z3 import minimise_network

        t = time.perf_counter()
        if t >= self.deadline:  # nothing left to prove with: building the z3 model alone takes seconds
            return self.done(start, lower, Z3_STOPPED, False)
        try:
            res = minimise_network(self.problem, self.bounds, self.deadline, start=start, lower_bound=lower)
        except MemoryError:
            self.fell_back(key or "z3", Z3_MEMORY, lower)
            return self.done(start, lower, Z3_MEMORY, False)
        if key is not None:
            self.timings[key] = time.perf_counter() - t
        if res.mask is None and res.proven:
            return self.infeasible(Z3_NO_MASK)
        return self.done(res.mask, res.lower_bound, Z3_PROVEN if res.proven else Z3_STOPPED, res.proven)


def solve_network(problem: NetworkProblem, backend: str = "auto", timeout: float = DEFAULT_TIMEOUT, prove: bool = True,
                  max_masks: int = MAX_ENUMERATED_MASKS, progress: Progress | None = None,
                  enum_memory_mb: float = ENUM_MEMORY_MB) -> Solution:
    """Smallest mask whose masked input keeps ``problem.target`` (see the module docstring);
    ``progress`` as in :func:`smug.solver.solve.solve` (verified masks and proven bounds).
    ``enum_memory_mb`` sizes the enumeration's batches; a stage that runs out of memory
    anyway hands over to the next one with every size it refuted (``stats["fallbacks"]``)."""
    check_request("whole-network", backend, timeout)
    t0 = time.perf_counter()
    empty = np.zeros(problem.n_vars, dtype=bool)
    empty_keeps = certify_network(problem, empty).valid
    whole = None if empty_keeps else whole_input_mask(problem)
    if whole is not None and progress is not None:  # an answer before any bound or proof work
        progress(Improved(int(whole.sum()), 1, time.perf_counter() - t0, whole.copy()))
    run = _Run(problem, backend, timeout, progress, enum_memory_mb)
    if empty_keeps:
        return run.done(empty, 0, EMPTY_KEEPS, True)
    lower = 1
    t = time.perf_counter()
    grown = run.grow()
    start = run.shrink(grown if grown is not None else whole)
    run.timings["start"] = time.perf_counter() - t
    run.report(start, lower)
    if backend == "enum":
        return run.exhaust(start, lower, "enum")
    if backend == "z3":
        return run.z3(start, lower, "z3")
    if backend == "auto":
        res = run.enumerate(_quick_size(run, QUICK_MASKS), lower, "enum")
        if res.mask is not None:
            return run.done(res.mask, res.lower_bound, EXHAUSTIVE, True)
        lower = res.lower_bound
        run.report(start, lower)
        if lower > run.n_relevant:
            return run.infeasible(EXHAUSTIVE_NO_MASK)
        if start is not None and int(start.sum()) > lower:
            res = run.enumerate_fitting(lower, int(start.sum()) - 1, max_masks, "enum_more")
            if res.mask is not None:
                return run.done(res.mask, res.lower_bound, EXHAUSTIVE, True)
            lower = res.lower_bound
            run.report(start, lower)
        if start is not None and int(start.sum()) <= lower:
            return run.done(start, lower, EXHAUSTIVE, True)
    try:
        candidate = _highs_candidate(run, start, lower)
    except MemoryError:
        run.fell_back("highs", "HiGHS ran out of memory (the memory cap)", lower)
        candidate = start
    if candidate is not None and int(candidate.sum()) <= lower:  # meets the sizes refuted exactly
        return run.done(candidate, lower, EXHAUSTIVE, True)
    if candidate is None:  # no start and HiGHS found nothing: settle it exactly
        if run.work(run.n_relevant) <= max_masks:
            return run.exhaust(None, lower)
        return run.z3(None, lower)
    if not prove:
        return run.done(candidate, lower, NOT_PROVEN, False)
    return _prove(run, candidate, lower, max_masks)


def whole_input_mask(problem: NetworkProblem) -> np.ndarray | None:
    """Every relevant variable on (the input itself where it matters), when that keeps the class
    exactly: the first answer of every solve, found in one exact forward pass.  With delta > 0 it
    may fail while a smaller mask passes (masking can widen the margin): then there is none."""
    full = np.zeros(problem.n_vars, dtype=bool)
    full[relevant_variables(problem)] = True
    return full if certify_network(problem, full).valid else None


def _quick_size(run: _Run, masks: int) -> int:
    """The largest mask size whose enumeration is at most the work of ``masks`` MLP masks."""
    quick = 0
    while quick < run.n_relevant and run.work(quick + 1) <= masks:
        quick += 1
    return quick


def _highs_candidate(run: _Run, start: np.ndarray | None, lower: int) -> np.ndarray | None:
    """The smaller of ``start`` and a certified big-M MILP mask (margin 1e-4, 1e-3, 1e-2 until one passes);
    with a start, HiGHS has ``HIGHS_SHARE`` of the time left, the rest is the proof's."""
    from smug.solver.network_milp import solve_network_milp

    t = time.perf_counter()
    until = run.deadline if start is None else t + HIGHS_SHARE * (run.deadline - t)
    candidate = start
    for attempt in range(3):
        if attempt and time.perf_counter() >= until:
            break
        milp = solve_network_milp(run.problem, run.bounds, max(0.01, until - time.perf_counter()),
                                  1e-4 * 10**attempt)
        if milp.mask is not None and certify_network(run.problem, milp.mask).valid:
            if candidate is None or milp.mask.sum() < candidate.sum():
                candidate = milp.mask
            break
    run.timings["highs"] = time.perf_counter() - t
    if candidate is not start:
        run.report(candidate, lower)
    return candidate


def _prove(run: _Run, candidate: np.ndarray, lower: int, max_masks: int) -> Solution:
    """Refute every smaller mask: by enumeration when they are few enough, else by z3."""
    size = int(candidate.sum())
    res = run.enumerate_fitting(lower, size - 1, max_masks, "prove")
    if res.mask is not None:  # the margin made HiGHS miss a smaller mask
        return run.done(res.mask, res.lower_bound, EXHAUSTIVE, True)
    if res.lower_bound >= size:
        return run.done(candidate, res.lower_bound, EXHAUSTIVE, True)
    if res.stopped == "deadline":
        return run.done(candidate, res.lower_bound, ENUM_STOPPED, False)
    return run.z3(candidate, res.lower_bound, "prove")  # the rest is beyond the enumeration (or its memory)
