"""The robustness query of abductive (robust) explanations, decided soundly.

A *robust explanation* of the decision ``target`` at input ``x`` is a set ``E`` of mask
variables (pixels or blocks, :attr:`NetworkProblem.group`) such that every input ``v``
with

    v_p = x_p                                          if p's variable is in E (or p has none)
    max(lo, x_p - eps) <= v_p <= min(hi, x_p + eps)    otherwise (eps = inf: the whole [lo, hi])

keeps ``logit[target] - logit[j] > delta`` for every other class ``j``.  Semantics: exact
rational arithmetic over the float64 network, ``x`` and ``eps`` (VeriX, Wu et al. 2023,
Def. 1; an abductive explanation of Ignatiev et al. 2019 restricted to an L-inf box).

:class:`Verifier` answers "is E robust?" with a verdict that rests on no float allowance:

1. rigorous interval + CROWN bounds (:mod:`smug.solver.robust_bounds`): every margin's lower
   bound above ``delta`` proves it;
2. attacks (the vertex of the box that CROWN's linear bound points to, then projected sign
   gradient steps) give candidate inputs; a candidate is a counterexample only when the exact
   (integer) forward pass of :mod:`smug.solver.network_exact` says so, it lies in the exact box,
   and the optional ``runtime`` replay (onnxruntime, float32) agrees;
3. otherwise branch and bound over the phases of the unstable ReLUs, each node's LP bound made
   rigorous by a safe dual bound (:mod:`smug.solver.robust_lp`): a closed search proves the
   margin, an LP point is an attack candidate replayed as in 2.  (z3 over exact rationals was
   tried first: with 784 free inputs and 53-bit dyadic weights it did not answer one query of
   VeriX's network in 10 minutes.)

Counterexample inputs are float32 values (so onnxruntime reads exactly what was checked).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from fractions import Fraction
from typing import Callable

import numpy as np

from smug.ir import NetworkProblem
from smug.solver import network_exact
from smug.solver.robust_bounds import Bounds, down, layer_bounds, margin_lower_bounds, up
from smug.solver.robust_lp import MarginLP, prove_class

Runtime = Callable[[np.ndarray], np.ndarray]  # flat inputs (n, d) float32 -> logits (n, classes)

ROBUST, COUNTEREXAMPLE, UNKNOWN = "robust", "counterexample", "unknown"
PGD_STEPS = 12


@dataclass(frozen=True)
class RobustQuery:
    """The fixed data of every question: the network problem (its ``x``, ``group``, ``target``,
    ``delta``), the radius ``epsilon`` (``inf``: the whole domain) and the input domain."""

    problem: NetworkProblem
    epsilon: float
    domain: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        lo, hi = self.domain
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ValueError(f"the input domain must be finite with lo <= hi, got {self.domain}")
        if not self.epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0 (or inf), got {self.epsilon}")
        x = self.problem.x
        if np.any(x < lo) or np.any(x > hi):
            raise ValueError("the input lies outside the domain")

    @property
    def n_vars(self) -> int:
        return self.problem.n_vars

    def free_inputs(self, fixed: np.ndarray) -> np.ndarray:
        """Bool per input entry: may vary (its variable exists and is not in ``fixed``)."""
        g = self.problem.group
        free = g >= 0
        free[free] = ~np.asarray(fixed, bool)[g[free]]
        return free

    @cached_property
    def _free_box(self) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...], np.ndarray, np.ndarray]:
        """Per input entry, the exact bounds it has when free, and float32 bounds inside them."""
        dlo, dhi = Fraction(self.domain[0]), Fraction(self.domain[1])
        eps = None if np.isinf(self.epsilon) else Fraction(self.epsilon)
        x = self.problem.x
        if not np.array_equal(x.astype(np.float32).astype(np.float64), x):
            raise ValueError("robust explanations need an input that float32 represents exactly")
        lo, hi = [], []
        for xp in x.tolist():
            q = Fraction(xp)
            lo.append(dlo if eps is None else max(dlo, q - eps))
            hi.append(dhi if eps is None else min(dhi, q + eps))
        lo32 = np.array([_float32_at_least(a) for a in lo], np.float32)
        hi32 = np.array([_float32_at_most(b) for b in hi], np.float32)
        return tuple(lo), tuple(hi), lo32, hi32

    def exact_box(self, fixed: np.ndarray) -> tuple[list[Fraction], list[Fraction]]:
        """The box of the module docstring, exactly."""
        free = self.free_inputs(fixed)
        lo, hi, _, _ = self._free_box
        xs = [Fraction(v) for v in self.problem.x.tolist()]
        return ([a if f else q for a, f, q in zip(lo, free.tolist(), xs)],
                [b if f else q for b, f, q in zip(hi, free.tolist(), xs)])

    def outer_box(self, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float64 bounds that contain the exact box (rounded outwards)."""
        x = self.problem.x
        free = self.free_inputs(fixed)
        lo_d, hi_d = self.domain
        if np.isinf(self.epsilon):
            lo, hi = np.full_like(x, lo_d), np.full_like(x, hi_d)
        else:
            lo = np.maximum(down(x - self.epsilon), lo_d)
            hi = np.minimum(up(x + self.epsilon), hi_d)
        return np.where(free, lo, x), np.where(free, hi, x)

    def inner_box32(self, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 bounds inside the exact box: every float32 between them is a valid input."""
        free = self.free_inputs(fixed)
        _, _, lo32, hi32 = self._free_box
        x32 = self.problem.x.astype(np.float32)
        return np.where(free, lo32, x32), np.where(free, hi32, x32)

    def contains(self, v: np.ndarray, fixed: np.ndarray) -> bool:
        """``v`` (float32 values) lies in the exact box of ``fixed``: fixed entries equal ``x``, free
        ones lie between float32 bounds that are inside the exact box (:meth:`inner_box32`)."""
        lo, hi = self.inner_box32(fixed)
        v = np.asarray(v, np.float64)
        return bool(np.all(v == v.astype(np.float32)) and np.all(lo <= v) and np.all(v <= hi))


def _float32_at_least(q: Fraction) -> np.float32:
    f = np.float32(float(q))
    while Fraction(float(f)) < q:
        f = np.nextafter(f, np.float32(np.inf))
    return f


def _float32_at_most(q: Fraction) -> np.float32:
    f = np.float32(float(q))
    while Fraction(float(f)) > q:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


@dataclass(frozen=True)
class Counterexample:
    """An input in the box of ``fixed`` whose exact margin ``min_j logit[t] - logit[j] - delta``
    is ``<= 0`` (class ``beats`` reaches the target)."""

    input: np.ndarray  # flat float32 values (stored as float64)
    margin: float  # the exact margin, rounded for display
    beats: int
    runtime_checked: bool  # onnxruntime replayed it too

    def perturbed(self, problem: NetworkProblem) -> np.ndarray:
        """Bool per mask variable: some entry of it differs from ``x`` (a contrastive set)."""
        out = np.zeros(problem.n_vars, bool)
        diff = (self.input != problem.x) & (problem.group >= 0)
        out[problem.group[diff]] = True
        return out


@dataclass(frozen=True)
class Verdict:
    status: str  # ROBUST, COUNTEREXAMPLE or UNKNOWN
    proof: str | None = None  # "bounds" or "lp-bab" for ROBUST
    counterexample: Counterexample | None = None


@dataclass
class Stats:
    """What the verifier did (counts per engine, seconds)."""

    calls: int = 0
    by_bounds: int = 0
    by_attack: int = 0
    unknown: int = 0
    lp_classes: int = 0
    lp_nodes: int = 0
    lp_seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def exact_margins(problem: NetworkProblem, v: np.ndarray) -> list[Fraction]:
    """``logit[t] - logit[j] - delta`` exactly for every other class ``j`` (class order, ``t`` skipped)."""
    N, E = network_exact.exact_forward(problem.layers, v)
    scale = Fraction(2) ** E
    t = problem.target
    d = Fraction(problem.delta)
    return [Fraction(int(N[t]) - int(N[j])) * scale - d for j in range(len(N)) if j != t]


def float_margins(problem: NetworkProblem, V: np.ndarray) -> np.ndarray:
    """float64 margins ``logit[t] - logit[j]`` of a batch (rows), candidates only."""
    H = np.asarray(V, np.float64).T
    for layer in problem.layers:
        H = layer.matrix @ H + layer.bias[:, None]
        if layer.relu:
            H = np.maximum(H, 0.0)
    return H[problem.target][None, :] - H


def gradients(problem: NetworkProblem, V: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Row ``r``: the gradient of ``logit[classes[r]] - logit[t]`` at ``V[r]`` (float64, each row's
    linear region; a batch of rows)."""
    H = np.asarray(V, np.float64)
    patterns = []
    for layer in problem.layers:
        Z = np.asarray(layer.matrix @ H.T).T + layer.bias
        patterns.append(Z > 0)
        H = np.maximum(Z, 0.0) if layer.relu else Z
    G = np.zeros((len(H), problem.layers[-1].weight.shape[0]))
    G[np.arange(len(H)), np.asarray(classes)] = 1.0
    G[:, problem.target] -= 1.0
    for k in range(len(problem.layers) - 1, -1, -1):
        G = np.asarray((problem.layers[k].matrix_t @ G.T).T)
        if k > 0 and problem.layers[k - 1].relu:
            G = G * patterns[k - 1]
    return G


def gradient(problem: NetworkProblem, v: np.ndarray, j: int) -> np.ndarray:
    """Gradient of ``logit[j] - logit[t]`` at ``v`` (float64, the linear region of ``v``)."""
    return gradients(problem, np.asarray(v)[None, :], np.array([j]))[0]


@dataclass
class Verifier:
    """Decides robustness questions of one :class:`RobustQuery` (see the module docstring)."""

    query: RobustQuery
    runtime: Runtime | None = None
    stats: Stats = field(default_factory=Stats)

    # ------------------------------------------------------------------ pieces
    def bounds(self, fixed: np.ndarray) -> tuple[Bounds, np.ndarray, np.ndarray, list[int]]:
        box = self.query.outer_box(fixed)
        b = layer_bounds(self.query.problem.layers, box)
        lbs, N, others = margin_lower_bounds(self.query.problem.layers, b, box, self.query.problem.target)
        return b, lbs, N, others

    def proven_by_bounds(self, fixed: np.ndarray) -> bool:
        """True when the rigorous bounds alone prove ``fixed`` robust."""
        _, lbs, _, _ = self.bounds(fixed)
        return bool(np.all(lbs > self.query.problem.delta))

    def replay(self, v: np.ndarray, fixed: np.ndarray) -> Counterexample | None:
        """``v`` as a counterexample if the exact forward (and the runtime) say so, else None."""
        problem = self.query.problem
        v = np.asarray(v, np.float64)
        if not self.query.contains(v, fixed):
            return None
        margins = exact_margins(problem, v)
        worst = int(np.argmin(margins))
        if margins[worst] > 0:
            return None
        others = [j for j in range(problem.n_classes) if j != problem.target]
        checked = False
        if self.runtime is not None:
            logits = np.asarray(self.runtime(v.astype(np.float32)[None, :]), np.float64)[0]
            if logits[problem.target] - np.delete(logits, problem.target).max() > problem.delta:
                return None  # the runtime keeps the class: not believed
            checked = True
        return Counterexample(v, float(margins[worst]), others[worst], checked)

    def attack(self, fixed: np.ndarray, N: np.ndarray, classes: list[int]) -> Counterexample | None:
        """CROWN's vertex for each class, then projected sign-gradient steps; exact replay."""
        problem = self.query.problem
        lo, hi = self.query.inner_box32(fixed)
        lo, hi = lo.astype(np.float64), hi.astype(np.float64)
        others = [j for j in range(problem.n_classes) if j != problem.target]
        rows = [others.index(j) for j in classes]
        V = np.where(N[rows] >= 0, lo, hi)  # minimises the linear lower bound of the margin
        margins = float_margins(problem, V)
        step = (hi - lo) / 4
        cls = np.asarray(classes)
        for _ in range(PGD_STEPS):  # projected sign-gradient steps, every class's row at once
            live = np.flatnonzero(margins[cls, np.arange(len(cls))] > problem.delta)
            if not len(live):
                break
            G = gradients(problem, V[live], cls[live])
            V[live] = np.clip(V[live] + step * np.sign(G), lo, hi).astype(np.float32).astype(np.float64)
            margins[:, live] = float_margins(problem, V[live])
            step = step * 0.7
        order = np.argsort(margins[classes, np.arange(len(classes))])
        for r in order[:3]:
            cex = self.replay(V[r], fixed)
            if cex is not None:
                return cex
        for r in order:
            found = self.greedy_attack(fixed, classes[r])
            cex = None if found is None else self.replay(found, fixed)
            if cex is not None:
                return cex
        return None

    def greedy_attack(self, fixed: np.ndarray, j: int, rounds: int = 4) -> np.ndarray | None:
        """A float32 input in the box of ``fixed`` whose float margin against class ``j`` is below
        ``delta``, moving few features: the free features with the largest linear gain (gradient
        times the distance to the box's end) go to their ends, the shortest prefix that flips the
        margin, re-linearised up to ``rounds`` times.  None when none is found (a candidate only)."""
        problem = self.query.problem
        lo, hi = (b.astype(np.float64) for b in self.query.inner_box32(fixed))
        grouped = problem.group >= 0
        v = problem.x.copy()
        for _ in range(rounds):
            g = gradient(problem, v, j)
            step = np.where(grouped, np.where(g > 0, hi, lo) - v, 0.0)
            gain = np.zeros(problem.n_vars)
            np.add.at(gain, problem.group[grouped], (g * step)[grouped])
            feats = np.flatnonzero(gain > 0)
            if not len(feats):
                return None
            feats = feats[np.argsort(-gain[feats], kind="stable")]
            rank = np.full(problem.n_vars, -1)
            rank[feats] = np.arange(len(feats))
            entries = np.flatnonzero(grouped & (rank[np.maximum(problem.group, 0)] >= 0))
            D = np.zeros((len(feats), v.size))
            D[rank[problem.group[entries]], entries] = step[entries]
            V = (v + np.cumsum(D, axis=0)).astype(np.float32).astype(np.float64)
            hit = np.flatnonzero(float_margins(problem, V)[j] <= problem.delta - 1e-6)
            if len(hit):
                return V[hit[0]]
            v = V[-1]
        return None

    # ------------------------------------------------------------------ the verdict
    def verify(self, fixed: np.ndarray, exact: bool = True, deadline: float = float("inf")) -> Verdict:
        """Is ``fixed`` (bool per mask variable) a robust explanation?  With ``exact=False`` only
        bounds and attacks are tried (a cheap question: UNKNOWN when both fail)."""
        self.stats.calls += 1
        fixed = np.asarray(fixed, bool)
        bounds, lbs, N, others = self.bounds(fixed)
        delta = self.query.problem.delta
        if np.all(lbs > delta):
            self.stats.by_bounds += 1
            return Verdict(ROBUST, proof="bounds")
        open_classes = [j for j, lb in zip(others, lbs) if lb <= delta]
        cex = self.attack(fixed, N, open_classes)
        if cex is not None:
            self.stats.by_attack += 1
            return Verdict(COUNTEREXAMPLE, counterexample=cex)
        if not exact or time.perf_counter() >= deadline:
            self.stats.unknown += 1
            return Verdict(UNKNOWN)
        verdict = self.lp_check(fixed, bounds, open_classes, deadline)
        if verdict.status == UNKNOWN:
            self.stats.unknown += 1
        return verdict

    def lp_check(self, fixed: np.ndarray, bounds: Bounds, classes: list[int], deadline: float) -> Verdict:
        """Branch and bound with safe LP bounds (:mod:`smug.solver.robust_lp`), class by class."""
        t0 = time.perf_counter()
        problem = self.query.problem
        free = self.query.free_inputs(fixed)
        lp = MarginLP(problem.layers, problem.x, free, self.query.outer_box(fixed), bounds)
        lo, hi = self.query.inner_box32(fixed)
        found: list[Counterexample] = []

        def is_counterexample(point: np.ndarray) -> bool:
            v = problem.x.astype(np.float32).copy()
            v[lp.free_idx] = np.clip(point.astype(np.float32), lo[lp.free_idx], hi[lp.free_idx])
            v = v.astype(np.float64)
            margins = np.delete(float_margins(problem, v[None, :])[:, 0], problem.target)
            if margins.min() > problem.delta + 1e-9:
                return False
            cex = self.replay(v, fixed)
            if cex is not None:
                found.append(cex)
            return cex is not None

        try:
            for j in sorted(classes, key=lambda j: 0):
                self.stats.lp_classes += 1
                answer = prove_class(lp, problem.target, j, problem.delta, deadline, is_counterexample)
                self.stats.lp_nodes += answer.nodes
                if answer.status == "candidate":
                    return Verdict(COUNTEREXAMPLE, counterexample=found[-1])
                if answer.status != "proven":
                    return Verdict(UNKNOWN)
            return Verdict(ROBUST, proof="lp-bab")
        finally:
            self.stats.lp_seconds += time.perf_counter() - t0
