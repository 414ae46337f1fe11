"""Candidates for cardinality-minimal robust explanations from the attacks found so far.

Every counterexample gives a direction ``d`` (per input entry, 0 where it does not move).  For a
set ``E`` (``m_f = 1`` for its features) the *strategy* ``d`` plays the input

    v_d(m) = x + d * (1 - m[group])                                            (S1)

which lies in the box of ``E``.  A robust ``E`` keeps every strategy's input in the target class;
the directions found so far form a restricted adversary, and the smallest ``E`` that beats it is
a good candidate: it avoids every attack seen, not only the contrastive sets' supports.

The margin ``z_t - z_j`` along (S1) is piecewise linear in ``m``.  It is linearised at a point
``m*`` (the ReLU pattern of ``v_d(m*)``):

    z_t - z_j (v_d(m))  ~  mu_j + sum_f c_f (m_f - m*_f),   c_f = -sum_{p in f} g_p d_p        (S2)

with ``mu_j`` the margin and ``g`` the gradient of ``z_t - z_j`` at ``v_d(m*)``.  The candidate is a
smallest ``m`` meeting every row ``(S2) >= delta`` (HiGHS, a multi-knapsack over 0/1 ``m``); a
strategy it does not beat in float gets its rows re-linearised at the candidate, until it beats
them all or the rounds run out.  A linearisation can be wrong far from its point (the margin is
neither convex nor concave in ``m``), so no row may exclude a set known to beat every strategy
(:meth:`Strategies.admit`: a robust ``E``); its right-hand side is lowered to let it in.

A candidate that beats every strategy by ``delta`` alone lies on the boundary of the attacks seen,
and the next attack usually refutes it.  :meth:`Strategies.candidate` can ask a *push*: every row
``(S2) >= delta + push`` (the admitted sets may then fall out); a pushed candidate is larger but far
more often robust, and the subset traversal then shrinks it.  Nothing here is a proof: candidates are verified by
:class:`~smug.solver.robust.Verifier` like every other (see :mod:`smug.solver.robust_explain`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from smug.common import quiet_highs
from smug.solver.robust import RobustQuery, float_margins, gradient

CLASSES_PER_ROW = 2  # the classes closest to the target at the linearisation point get a row each
SLACK = 1e-4  # float margin a candidate asks of every strategy beyond delta (candidates only)
ROUNDS = 8  # re-linearisations per candidate
SOLVE_S = 10.0  # HiGHS seconds per multi-knapsack at most (as every step of the search; a candidate anyway)


@dataclass
class Strategies:
    """The restricted adversary: attack directions and the linear rows (S2) built so far."""

    query: RobustQuery
    directions: list[np.ndarray] = field(default_factory=list)
    coef: list[np.ndarray] = field(default_factory=list)  # per row: float per feature
    rhs: list[float] = field(default_factory=list)
    admitted: list[np.ndarray] = field(default_factory=list)  # sets no row may exclude (float per feature)
    solves: int = 0
    seconds: float = 0.0

    @property
    def problem(self):
        return self.query.problem

    def admit(self, fixed: np.ndarray) -> None:
        """``fixed`` beats every strategy (it is robust): every row, now and later, lets it in."""
        m = np.asarray(fixed, np.float64)
        self.admitted.append(m)
        self.rhs = [min(r, float(c @ m)) for c, r in zip(self.coef, self.rhs)]

    def add(self, d: np.ndarray, at: np.ndarray) -> None:
        """A new direction, linearised at the set ``at`` (bool per feature)."""
        self.directions.append(np.asarray(d, np.float64))
        self.linearise(len(self.directions) - 1, at)

    def point(self, d: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """(S1): the input strategy ``d`` plays against ``fixed``."""
        return self.problem.x + np.where(self.query.free_inputs(fixed), d, 0.0)

    def margins(self, fixed: np.ndarray) -> np.ndarray:
        """Float margin ``min_j z_t - z_j`` of every strategy's input against ``fixed``."""
        if not self.directions:
            return np.zeros(0)
        V = np.stack([self.point(d, fixed) for d in self.directions])
        m = float_margins(self.problem, V)
        m[self.problem.target] = np.inf
        return m.min(axis=0)

    def linearise(self, r: int, at: np.ndarray) -> None:
        """Rows (S2) of direction ``r`` at ``at`` for the classes closest to the target."""
        problem = self.problem
        d = self.directions[r]
        v = self.point(d, at)
        mu = float_margins(problem, v[None, :])[:, 0]
        mu[problem.target] = np.inf
        grouped = problem.group >= 0
        m_at = np.asarray(at, np.float64)
        for j in np.argsort(mu, kind="stable")[:CLASSES_PER_ROW].tolist():
            c_entry = gradient(problem, v, j) * d  # -g_p d_p with g the gradient of z_t - z_j
            c = np.zeros(problem.n_vars)
            np.add.at(c, problem.group[grouped], c_entry[grouped])
            self.coef.append(c)
            self.rhs.append(min([problem.delta + SLACK - mu[j] + float(c @ m_at)] + [float(c @ a) for a in self.admitted]))

    def _smallest(self, max_size: int, timeout: float, push: float = 0.0) -> np.ndarray | None:
        """A smallest 0/1 ``m`` meeting every row raised by ``push``, with ``sum m <= max_size``
        (HiGHS; None: none found)."""
        import highspy

        n = self.problem.n_vars
        h = quiet_highs()
        for key, val in [("output_flag", False), ("threads", 1), ("time_limit", max(0.05, float(timeout)))]:
            h.setOptionValue(key, val)
        cols = np.arange(n, dtype=np.int32)
        h.addVars(n, np.zeros(n), np.ones(n))
        h.changeColsCost(n, cols, np.ones(n))
        h.changeColsIntegrality(n, cols, np.full(n, highspy.HighsVarType.kInteger))
        for c, r in zip(self.coef, self.rhs):
            idx = np.flatnonzero(c).astype(np.int32)
            h.addRow(r + push, highspy.kHighsInf, len(idx), idx, c[idx])
        h.addRow(0.0, float(max_size), n, cols, np.ones(n))
        t0 = time.perf_counter()
        h.run()
        self.solves, self.seconds = self.solves + 1, self.seconds + time.perf_counter() - t0
        x = np.asarray(h.getSolution().col_value, np.float64)
        if h.getInfo().primal_solution_status != 2 or len(x) != n:  # 2: a feasible point
            return None
        return x > 0.5

    def candidate(self, max_size: int, deadline: float, rounds: int = ROUNDS, push: float = 0.0) -> np.ndarray | None:
        """A set of at most ``max_size`` features whose input beats every strategy in float (S1),
        by about ``push`` more than ``delta``, or None when the rows admit none (or the rounds or the
        time run out)."""
        if not self.coef:
            return None
        for _ in range(rounds):
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            H = self._smallest(max_size, min(SOLVE_S, left), push)
            if H is None:
                return None
            losing = np.flatnonzero(self.margins(H) <= self.problem.delta + (SLACK + push) / 2)
            if not len(losing):
                return H
            for r in losing.tolist():
                self.linearise(r, H)
        return None
