"""Subset-minimal and cardinality-minimal robust explanations (see :mod:`smug.solver.robust`).

* **Subset-minimal** (:func:`subset_minimal`): VeriX's traversal (Wu et al. 2023, Alg. 1: free the
  features one by one, least sensitive first, keeping a feature only when freeing it breaks
  robustness) with VeriX+'s binary search (Wu et al. 2024): a whole chunk of the order is freed
  at once when the verifier proves it, and split in halves otherwise.  Every feature kept in
  ``E`` comes with a counterexample (an input in the box of ``E`` minus that feature that the
  exact forward pass misclassifies), so no proper subset of ``E`` is robust; robustness is
  monotone in the box, so each counterexample stays valid for the final ``E``.
* **Cardinality-minimal** (:func:`cardinality_minimal`): implicit hitting sets (Ignatiev et al.,
  "Abduction-based explanations", AAAI 2019): every counterexample's perturbed features form a
  contrastive set that any robust ``E`` must hit, and its direction gives knapsack cuts
  (:mod:`smug.solver.robust_cuts`) that every robust ``E`` of at most ``K`` features meets, whatever
  class the counterexample reached; the proven lower bound is the best of the hitting sets' (exact
  packing bound, SAT) and the cuts' (exact LP duality).  A candidate is verified, and either proven
  robust (then its subset-minimal part is the new best) or refuted by a new counterexample.  Every
  other round the candidate is the smallest set that beats every attack seen so far
  (:mod:`smug.solver.robust_strategies`, smaller than the best), by a push beyond ``delta`` that
  grows while cheap attacks refute the candidates (a candidate on the boundary of the attacks seen
  is rarely robust); otherwise, and when there is none,
  a set meeting every cut at the lowest size not refuted, else a minimum hitting set.  Anytime: the
  best proven ``E`` and the lower bound at every step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from smug.solver.robust_bounds import back_substitute, fixing_minimum, layer_bounds, margin_matrix
from smug.solver.robust_cuts import CutBound, attack_direction, exact_direction, group_size
from smug.solver.robust_hitting import minimum_hitting_set, no_hitting_set_of_size
from smug.solver.robust_lp import MarginLP, prove_class
from smug.solver.robust_strategies import Strategies
from smug.solver.robust import COUNTEREXAMPLE, ROBUST, Counterexample, Verifier, float_margins, gradient

SUBSET, OPTIMAL, FEASIBLE = "subset-minimal", "optimal", "feasible"
REFUTED = "refuted"  # a candidate with a counterexample
NEED_SETS = 16  # contrastive sets whose need is computed (a binary search of bounds each)
# The strategies' push: 0 at first, PUSH_FIRST of the input's margin at the first refutation, then times PUSH_UP
# when refuted, PUSH_DOWN when proven, PUSH_DOWN**2 when no smaller candidate exists; PUSH_TRIES candidates a round
PUSH_FIRST, PUSH_UP, PUSH_DOWN, PUSH_TRIES = 0.05, 2.0, 0.7, 4
EXACT_CHUNK = 32  # chunks up to this many features get the complete (LP) check (8: 14.5 s CPU, 32: 11.7 s on mnist-10x2 digit 1)


@dataclass(frozen=True)
class RobustExplanation:
    """A robust explanation ``fixed`` (bool per mask variable) and what is proven about it."""

    fixed: np.ndarray
    status: str  # SUBSET (each feature justified), OPTIMAL, FEASIBLE (robust; minimality not proven)
    lower_bound: int  # proven: no robust explanation is smaller
    proof: str  # how robustness of ``fixed`` was proven ("bounds", "lp-bab")
    counterexamples: dict[int, Counterexample] = field(default_factory=dict)  # feature in E -> why it stays
    unresolved: tuple[int, ...] = ()  # features kept without a counterexample (a verifier timeout)
    stats: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def size(self) -> int:
        return int(self.fixed.sum())


def sensitivity_order(verifier: Verifier) -> np.ndarray:
    """Features by increasing sensitivity: the drop of the float margin when one feature alone
    moves to either end of its box (VeriX's heuristic traversal)."""
    q = verifier.query
    problem = q.problem
    lo_all, hi_all = q.outer_box(np.zeros(problem.n_vars, bool))
    base = float_margins(problem, problem.x[None, :]).copy()
    base[problem.target] = np.inf
    base_m = base.min()
    drops = np.zeros(problem.n_vars)
    group = problem.group
    for end in (lo_all, hi_all):
        V = np.repeat(problem.x[None, :], problem.n_vars, axis=0)
        rows, cols = group[group >= 0], np.flatnonzero(group >= 0)
        V[rows, cols] = end[cols]
        m = float_margins(problem, V)
        m[problem.target] = np.inf
        drops = np.maximum(drops, base_m - m.min(axis=0))
    return np.argsort(drops, kind="stable")


def _justify(verifier: Verifier, fixed: np.ndarray, p: int, deadline: float):
    trial = fixed.copy()
    trial[p] = False
    return verifier.verify(trial, exact=True, deadline=deadline)


def subset_minimal(verifier: Verifier, deadline: float = float("inf"), order: np.ndarray | None = None,
                   exact_chunk: int = EXACT_CHUNK, within: np.ndarray | None = None) -> RobustExplanation:
    """The traversal of the module docstring, from ``within`` (a robust set; default every feature)
    over its features; raises ``ValueError`` when ``within`` is not robust (for every feature: the
    input itself is not classified as the target with the margin)."""
    t0 = time.perf_counter()
    problem = verifier.query.problem
    fixed = np.ones(problem.n_vars, bool) if within is None else np.asarray(within, bool).copy()
    start = verifier.verify(fixed, exact=True, deadline=deadline)
    if start.status != ROBUST:
        raise ValueError("the input itself does not keep the target class with the required margin"
                         if within is None else "the set to start from is not proven robust")
    proof = start.proof
    order = sensitivity_order(verifier) if order is None else np.asarray(order)
    order = order[fixed[order]]  # only features of the start can be freed
    kept: dict[int, Counterexample] = {}
    unresolved: list[int] = []
    pending = [order]
    while pending:
        chunk = pending.pop()
        if time.perf_counter() > deadline:
            unresolved += [int(p) for p in chunk]
            continue
        trial = fixed.copy()
        trial[chunk] = False
        verdict = verifier.verify(trial, exact=len(chunk) <= exact_chunk, deadline=deadline)
        if verdict.status == ROBUST:
            fixed, proof = trial, verdict.proof
        elif len(chunk) == 1:
            if verdict.status == COUNTEREXAMPLE:
                kept[int(chunk[0])] = verdict.counterexample
            else:
                unresolved.append(int(chunk[0]))
        else:
            half = len(chunk) // 2
            pending += [chunk[half:], chunk[:half]]  # the first half (less sensitive) is popped first
    status = SUBSET if not unresolved else FEASIBLE
    return RobustExplanation(fixed, status, 0, proof, kept, tuple(unresolved), verifier.stats.as_dict(),
                             time.perf_counter() - t0)


def shrink(verifier: Verifier, cex: Counterexample, fixed: np.ndarray) -> Counterexample:
    """A counterexample that perturbs fewer features: each perturbed feature (least useful first)
    goes back to ``x`` while the float margin stays below ``delta``; the result is replayed exactly
    (the original is returned if the replay fails)."""
    problem = verifier.query.problem
    v = cex.input.copy()
    diff = (v != problem.x) & (problem.group >= 0)
    feats = np.unique(problem.group[diff])
    j = cex.beats
    slack = 1e-6
    # usefulness: |gradient . displacement| of each feature at v for the class it reaches
    g = gradient(problem, v, j) * (v - problem.x)
    use = np.zeros(problem.n_vars)
    np.add.at(use, problem.group[diff], np.abs(g[diff]))
    for f in feats[np.argsort(use[feats], kind="stable")]:
        entries = problem.group == f
        trial = v.copy()
        trial[entries] = problem.x[entries]
        m = float_margins(problem, trial[None, :])[:, 0]
        m[problem.target] = np.inf
        if m.min() <= problem.delta - slack:
            v = trial
    fixed_now = np.ones(problem.n_vars, bool)
    fixed_now[np.unique(problem.group[(v != problem.x) & (problem.group >= 0)])] = False
    shrunk = verifier.replay(v, fixed_now)
    return shrunk if shrunk is not None else cex


def contrastive(verifier: Verifier, fixed: np.ndarray, j: int) -> Counterexample | None:
    """A counterexample for class ``j`` in the box of ``fixed`` that perturbs few features
    (:meth:`Verifier.greedy_attack`, replayed exactly, then :func:`shrink`); None when the attack
    finds none."""
    found = verifier.greedy_attack(fixed, j)
    cex = None if found is None else verifier.replay(found, fixed)
    return None if cex is None else shrink(verifier, cex, fixed)


def contrastive_sets(verifier: Verifier, fixed: np.ndarray, classes: list[int], rounds: int = 6) -> list[Counterexample]:
    """Counterexamples in the box of ``fixed`` whose perturbed sets are disjoint: after each one its
    features are fixed too (each set is contrastive on its own: everything else stays at ``x``)."""
    out: list[Counterexample] = []
    fixed = fixed.copy()
    problem = verifier.query.problem
    for _ in range(rounds):
        cex = next((c for c in (contrastive(verifier, fixed, j) for j in classes) if c is not None), None)
        if cex is None:
            break
        out.append(cex)
        fixed |= cex.perturbed(problem)
    return out


def _vertex_direction(problem, N_row: np.ndarray, j: int, lo32: np.ndarray, hi32: np.ndarray,
                      steps: int = 8) -> np.ndarray:
    """Multipliers whose minimising vertex is a good attack on class ``j``: CROWN's, or the vertex
    reached by jumping to the end the gradient of ``z_j - z_t`` points to while the margin drops."""
    pick = lambda m: np.where(m >= 0, lo32, hi32)  # noqa: E731  (the vertex minimising m . v)
    best_m, best_margin = N_row, float(float_margins(problem, pick(N_row)[None, :])[j, 0])
    m = N_row
    for _ in range(steps):
        m = -gradient(problem, pick(m), j)  # minimise z_t - z_j
        margin = float(float_margins(problem, pick(m)[None, :])[j, 0])
        if margin >= best_margin:
            break
        best_m, best_margin = m, margin
    return best_m


def lp_refuted(layers, problem, box, d: np.ndarray, k: int, j: int, deadline: float, max_nodes: int = 40) -> bool:
    """``z_t - z_j < delta`` on all of ``S_k`` (see :func:`fixing_lower_bound`), proven by branch and
    bound with safe LP bounds (:class:`~smug.solver.robust_lp.MarginLP` over ``S_k``)."""
    minimum = fixing_minimum(problem.x, d, k)
    b = layer_bounds(layers, box, minimum=minimum)
    free = problem.group >= 0
    lp = MarginLP(layers, problem.x, free, box, b, fixing=(d, k))
    answer = prove_class(lp, j, problem.target, -problem.delta, deadline, lambda point: False, max_nodes)
    return answer.status == "proven"


def largest_refuted(problem, box: tuple[np.ndarray, np.ndarray], d: np.ndarray, j: int, deadline: float,
                    lp_steps: int = 0) -> int:
    """The largest ``k`` (entries) for which rigorous bounds prove ``z_t - z_j <= delta`` on all of
    ``S_k = {x + d * s : s in [0, 1]^n, sum (1 - s) <= k}`` (CROWN, binary search; then up to
    ``lp_steps`` more by LP branch and bound); -1 when not even ``x + d`` is proven.  Entries with
    ``d = 0`` never move, so ``k`` only counts the others."""
    layers = problem.layers
    spec = np.zeros((1, problem.n_classes))
    spec[0, j], spec[0, problem.target] = 1.0, -1.0
    n_moving = int(np.count_nonzero(d))

    def refuted(k: int) -> bool:
        minimum = fixing_minimum(problem.x, d, k)
        b = layer_bounds(layers, box, minimum=minimum)
        lb, _ = back_substitute(layers, len(layers) - 1, spec, list(b.lower), list(b.upper), box, minimum)
        return bool(lb[0] >= -problem.delta)

    if not refuted(0):
        return -1
    lo, hi = 0, n_moving
    if refuted(hi):
        return hi
    while hi - lo > 1 and time.perf_counter() < deadline:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if refuted(mid) else (lo, mid)
    for _ in range(lp_steps):
        if lo >= n_moving or not lp_refuted(layers, problem, box, d, lo + 1, j, deadline):
            break
        lo += 1  # the LP relaxation (branch and bound) over S_k refutes a little more than CROWN
    return lo


def fixing_lower_bound(verifier: Verifier, deadline: float = float("inf"), rounds: int = 3) -> int:
    """A proven lower bound on the size of every robust explanation, by bounds alone.

    For a class ``j`` and a direction ``d`` (each free entry moved to an end of its box, float32
    values inside the exact box), ``S_k`` (:func:`largest_refuted`) holds, for every ``E`` of at
    most ``k`` entries, the point that moves every entry outside ``E``; it lies in the box of
    ``E``.  When rigorous bounds over ``S_k`` (:func:`~smug.solver.robust_bounds.fixing_minimum`)
    prove ``z_t - z_j <= delta`` on all of ``S_k``, every such ``E`` has a counterexample, so every
    robust explanation has more than ``k`` entries, i.e. more than ``k // g`` features when a
    feature holds at most ``g`` entries.  ``rounds`` directions are tried per class: the vertex of
    an iterated gradient attack, then CROWN's vertex over the first ``S_k`` not refuted."""
    q = verifier.query
    problem = q.problem
    layers = problem.layers
    nothing = np.zeros(problem.n_vars, bool)
    box = q.outer_box(nothing)
    lo32, hi32 = (b.astype(np.float64) for b in q.inner_box32(nothing))
    C, others = margin_matrix(problem.n_classes, problem.target)
    full = layer_bounds(layers, box)
    _, N = back_substitute(layers, len(layers) - 1, C, list(full.lower), list(full.upper), box)
    g = group_size(problem)
    best = 0
    for r, j in enumerate(others):
        direction = _vertex_direction(problem, N[r], j, lo32, hi32)
        for _ in range(rounds):
            if time.perf_counter() > deadline:
                break
            d = exact_direction(problem.x, np.where(direction >= 0, lo32, hi32))
            k = largest_refuted(problem, box, d, j, deadline, lp_steps=problem.x.size)
            if k < 0:
                break
            best = max(best, k // g + 1)
            # the next direction: CROWN's vertex for the margin over the first set not refuted
            minimum = fixing_minimum(problem.x, d, k + 1)
            b = layer_bounds(layers, box, minimum=minimum)
            direction = back_substitute(layers, len(layers) - 1, C[r:r + 1], list(b.lower), list(b.upper), box,
                                        minimum)[1][0]
    return min(best, problem.n_vars)


def cardinality_minimal(verifier: Verifier, deadline: float = float("inf"),
                        start: RobustExplanation | None = None) -> RobustExplanation:
    """Implicit hitting sets (module docstring), started from ``start`` (default: a subset-minimal
    explanation).  Returns the best robust ``E`` with ``lower_bound``; ``OPTIMAL`` when they meet.

    Every counterexample, whatever class it reaches, adds two constraints that every robust ``E``
    meets: its contrastive set with a need (:func:`largest_refuted`), and a direction for knapsack
    cuts (:class:`~smug.solver.robust_cuts.CutBound`: one per direction and size ``K``).  The proven
    lower bound is the best of :func:`fixing_lower_bound`, the hitting sets' (exact packing bound,
    SAT) and the cuts' (exact LP duality at the largest ``K`` it reaches).  Candidates, every other
    round: a smallest set beating every counterexample's strategy (:class:`Strategies`); otherwise
    (or when there is none) a set meeting every cut at ``K`` (MILP), else a minimum hitting set."""
    t0 = time.perf_counter()
    problem = verifier.query.problem
    best = start if start is not None else subset_minimal(verifier, deadline)
    best_fixed, proof = best.fixed.copy(), best.proof
    n = problem.n_vars
    sets: list[np.ndarray] = []
    needs: list[int] = []
    margins = float_margins(problem, problem.x[None, :])[:, 0]
    classes = [j for j in np.argsort(margins, kind="stable").tolist() if j != problem.target]
    nothing = np.zeros(n, bool)
    box = verifier.query.outer_box(nothing)
    lo32, hi32 = (b.astype(np.float64) for b in verifier.query.inner_box32(nothing))
    g = group_size(problem)
    cuts = CutBound(problem, box)
    strategies = Strategies(verifier.query)
    strategies.admit(best_fixed)

    def add(cex: Counterexample) -> None:
        """The constraints of a counterexample: ``sum_{f in A} m_f >= need`` with ``A`` its perturbed
        features (shrunk) and ``need`` one more than the features of ``A`` it survives fixing
        (:func:`largest_refuted` along its own direction); and its direction for the knapsack cuts."""
        small = shrink(verifier, cex, np.ones(n, bool))
        feats = np.flatnonzero(small.perturbed(problem))
        k = -1
        if len(sets) < NEED_SETS:  # the need of the first sets (the knapsack cuts say more, for less)
            k = largest_refuted(problem, box, exact_direction(problem.x, small.input), small.beats, deadline)
        sets.append(feats)
        needs.append(max(1, min(len(feats), k // g + 1)))
        j = cex.beats
        extended = attack_direction(problem, cex.input, j, lo32, hi32, gradient(problem, cex.input, j))
        cuts.directions.append((extended, j))
        strategies.add(cex.input - problem.x, best_fixed)
        strategies.add(extended, best_fixed)

    for cex in best.counterexamples.values():
        if time.perf_counter() >= deadline:
            break
        add(cex)
    for cex in contrastive_sets(verifier, nothing, classes) if time.perf_counter() < deadline else ():
        add(cex)

    def refuted_cheaply(H: np.ndarray) -> bool:
        """True when cheap attacks (:func:`contrastive_sets`) refute ``H``; their counterexamples are added
        (those found before the deadline)."""
        found = contrastive_sets(verifier, H, classes)
        for cex in found:
            if time.perf_counter() >= deadline:
                break
            add(cex)
        return bool(found)

    def judge(H: np.ndarray) -> str:
        """REFUTED (counterexamples found, cheaply or by the verifier, and added), ROBUST (proven), or
        the verifier's UNKNOWN (out of time)."""
        if refuted_cheaply(H):
            return REFUTED
        verdict = verifier.verify(H, exact=True, deadline=deadline)
        if verdict.status == COUNTEREXAMPLE:
            add(verdict.counterexample)
            return REFUTED
        return verdict.status

    lower, status, iterations = fixing_lower_bound(verifier, deadline), FEASIBLE, 0
    push, first_push = 0.0, PUSH_FIRST * max(0.0, float(np.delete(margins, problem.target).min()))
    while time.perf_counter() < deadline:
        iterations += 1
        size = int(best_fixed.sum())
        left = lambda: max(0.1, min(10.0, deadline - time.perf_counter()))  # noqa: E731
        covering = list(zip(sets, needs))
        lower = max(lower, cuts.bound(lower, size, covering, deadline))
        if lower >= size:
            status = OPTIMAL
            break
        if time.perf_counter() >= deadline:
            break  # every step below would start past the deadline
        hs = minimum_hitting_set(sets, n, timeout=left(), min_size=lower, needs=needs)
        lower = max(lower, hs.lower_bound)
        H = hs.chosen
        if H.sum() > lower and no_hitting_set_of_size(sets, n, int(H.sum()) - 1, needs=needs):
            lower = int(H.sum())  # SAT proves the candidate minimum of the hitting sets
        if lower >= size:
            status = OPTIMAL
            break
        if time.perf_counter() >= deadline:
            break
        # the lowest size not refuted, and every other round halfway to the best (a smaller E sooner)
        K = lower if iterations % 2 else max(lower, (lower + size - 1) // 2)
        outcome, tried = None, H
        for _ in range(PUSH_TRIES if iterations % 2 else 0):  # strategy candidates, pushed further when refuted
            if time.perf_counter() >= deadline:
                break
            candidate = strategies.candidate(size - 1, deadline, push=push)
            if candidate is None:
                push *= PUSH_DOWN * PUSH_DOWN  # nothing smaller beats every strategy by that much: ask less
                break
            outcome, tried = judge(candidate), candidate
            if outcome == REFUTED:
                push = max(first_push, push * PUSH_UP)
                continue
            if outcome == ROBUST:
                push *= PUSH_DOWN
            break
        if outcome is None:  # no strategy candidate: one meeting every cut at K, else the hitting set
            if time.perf_counter() >= deadline:
                break
            level = cuts.candidate(K, covering, left(), deadline)
            if level is None and H.sum() >= size:
                break  # nothing smaller than the best meets the constraints found: not proven optimal
            tried = level if level is not None else H
            outcome = judge(tried)
        if outcome == REFUTED:
            continue  # the counterexamples are in: bounds first
        if outcome != ROBUST:
            break  # the verifier ran out of time: keep the best and the bound
        smaller = subset_minimal(verifier, deadline, within=tried)  # free what the smaller robust E does not need
        best_fixed, proof = smaller.fixed, smaller.proof
        strategies.admit(best_fixed)
        for cex in smaller.counterexamples.values():
            add(cex)
    if lower >= best_fixed.sum():
        status = OPTIMAL  # the bound met a best found after it (the loop's time ran out first)
    stats = verifier.stats.as_dict() | {"hitting_sets": len(sets), "iterations": iterations,
                                        "directions": len(cuts.directions), "strategy_solves": strategies.solves,
                                        "strategy_seconds": round(strategies.seconds, 2), "push": round(push, 4),
                                        "median_set": float(np.median([len(s) for s in sets])) if sets else 0.0}
    return RobustExplanation(best_fixed, status, lower, proof, {}, (), stats, time.perf_counter() - t0)
