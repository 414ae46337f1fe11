"""Exact minimal masks and optimality proofs with z3.

Each Eq. 3 row ``sum_j a_j m_j > r`` (exact rationals from
:func:`smug.solver.exact.collapsed_rows`) is given to z3 in one of two exact forms:

* rows over at most ``TABLE_ARITY`` variables are compiled to their *minimal* CNF
  (:func:`threshold_clauses`): the row's rationals are brought to integers over one
  common denominator, all ``2**n`` subset sums are enumerated at once (numpy over
  Python integers, no rounding) and one clause is kept per maximal failing set.  A
  first-layer row reads 1-4 blocks (3x3 kernel) or 4-9 blocks (7x7 kernel, 4x4
  blocks), so these problems become purely propositional;
* wider rows stay Linear Real Arithmetic: ``sum_j If(m_j, a_j, 0) > r``.

The objective is MaxSAT (one soft ``not m_j`` per variable) solved by z3's
core-guided ``Optimize`` (engine ``MAXSAT_ENGINE``); when it answers *sat* its lower
and upper bounds meet, so the mask is proven minimal.  Every model z3 reports on the
way is checked exactly, so a timeout still leaves the best verified mask.  On the
Siamese-cat Lite0 problem (2,276 rows) this proves the optimum in 0.3 s where a
cardinality search (``AtMost``) did not finish in 60 s.  On the hard 7x7 family
(:mod:`smug.bench.hard_instances`, k = 3000, gamma = 0) compiling the 9-block rows
too (they were LRA, and the cardinality search ran out of time at 120 s) and using
the minimal CNF (one clause per failing assignment: 8 s) brought the proof to about
1 s (docs/benchmarks.md).

:class:`Z3Options` carries these choices explicitly (the benchmark's ablations pass
others; nothing is patched).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator
from fractions import Fraction

import numpy as np

from smug.solver.tie_break import UNDECIDED, least_minimum

# Rows over more variables stay LRA.  9 covers every row of a kernel of size <= 2w + 1
# over w x w blocks (at most 3 x 3 blocks: 7x7 over 4x4, 3x3 over 1x1 ...); compiling a
# row costs 2**n exact subset sums (0.3 s for the 3,000 rows of the 7x7 family).
TABLE_ARITY = 9
# z3's RC2 engine instead of its default "maxres": same answers, far steadier on big
# components (7x7 family, k = 10000, largest component 536 blocks / 3,205 rows, five z3
# seeds: rc2 0.5-10 s, median 2.3 s; maxres proved 1 of 5 within 40 s).
MAXSAT_ENGINE = "rc2"
INTERRUPT_SLACK = 0.05  # seconds past the deadline before a check is interrupted

Row = tuple[dict[int, Fraction], Fraction]
Literal = tuple[int, bool]  # (variable, the value that satisfies the literal)
Clause = tuple[Literal, ...]


@dataclass(frozen=True)
class SearchResult:
    mask: np.ndarray | None  # bool over the component's variables; None: none found
    lower_bound: int
    proven: bool
    seconds: float


def _real(z3, q: Fraction, ctx=None):
    return z3.RealVal(f"{q.numerator}/{q.denominator}", ctx)


def row_holds(coef: dict[int, Fraction], r: Fraction, on) -> bool:
    return sum((a for j, a in coef.items() if j in on), Fraction(0)) > r


def satisfies(rows: list[Row], on: set[int]) -> bool:
    """Exact check of every row for the variables in ``on`` switched on."""
    return all(row_holds(coef, r, on) for coef, r in rows)


def failing_assignments(coef: dict[int, Fraction], r: Fraction) -> list[dict[int, bool]]:
    """Every assignment of the row's variables under which the row fails (exact).

    The plain Fraction reference for :func:`threshold_clauses` (2**n evaluations)."""
    js = sorted(coef)
    bad = []
    for bits in itertools.product((False, True), repeat=len(js)):
        if not row_holds(coef, r, {j for j, b in zip(js, bits) if b}):
            bad.append(dict(zip(js, bits)))
    return bad


def integer_row(coef: dict[int, Fraction], r: Fraction) -> tuple[list[int], list[int], int]:
    """The row over one common denominator: variables, integer coefficients, integer rhs."""
    js = sorted(j for j, a in coef.items() if a != 0)
    den = r.denominator
    for j in js:
        den = math.lcm(den, coef[j].denominator)
    ints = [coef[j].numerator * (den // coef[j].denominator) for j in js]
    return js, ints, r.numerator * (den // r.denominator)


def threshold_clauses(coef: dict[int, Fraction], r: Fraction) -> list[Clause]:
    """The minimal CNF of ``sum_j a_j m_j > r`` over the row's variables (exact).

    With ``y_j = m_j`` where ``a_j > 0`` and ``y_j = not m_j`` where ``a_j < 0`` the row
    reads ``sum_j |a_j| y_j > T`` with ``T = r + sum_{a_j < 0} |a_j|``, increasing in
    every ``y_j``.  A set ``U`` of true ``y``'s fails when its sum is ``<= T``; the row
    holds exactly when no maximal failing ``U`` contains the true set, i.e. when every
    clause ``OR_{j not in U} y_j`` holds.  The empty clause means the row never holds;
    no clause, that it always does.  Subset sums are exact Python integers.
    """
    js, ints, rhs = integer_row(coef, r)
    weights = [abs(a) for a in ints]
    threshold = rhs - sum(a for a in ints if a < 0)
    if threshold < 0:  # even the worst assignment (every y false) passes
        return []
    sums = np.zeros(1, dtype=object)  # sums[U]: bit t of U is variable js[t]
    for w in weights:
        sums = np.concatenate([sums, sums + w])
    fail = (sums <= threshold).astype(bool)
    sets = np.arange(fail.size)
    maximal = fail.copy()
    for t in range(len(js)):
        bit = 1 << t
        maximal &= ((sets & bit) != 0) | ~fail[sets | bit]
    lits = [(j, a > 0) for j, a in zip(js, ints)]
    return [tuple(lits[t] for t in range(len(js)) if not (U >> t) & 1) for U in np.flatnonzero(maximal).tolist()]


def clause_holds(clause: Clause, on) -> bool:
    return any((j in on) == value for j, value in clause)


@dataclass(frozen=True)
class Z3Options:
    """How rows reach z3 and which MaxSAT engine runs; the defaults are the tuned ones,
    anything else is an ablation (bench/hard_first_layer.py)."""

    table_arity: int = TABLE_ARITY  # rows over more variables stay LRA
    minimal_cnf: bool = True  # False: one blocking clause per failing assignment
    maxsat_engine: str = MAXSAT_ENGINE


def blocking_clauses(coef: dict[int, Fraction], r: Fraction) -> list[Clause]:
    """One clause per failing assignment of the row's variables (not minimal; an ablation)."""
    return [tuple((j, not value) for j, value in bad.items()) for bad in failing_assignments(coef, r)]


def _z3_clause(z3, clause: Clause, m: dict, bare_unit: bool = True):
    """``Or`` of the clause's literals; a unit clause is its bare literal unless ``bare_unit`` is
    False (the ablation's terms, exactly as before issue 3)."""
    lits = [m[j] if value else z3.Not(m[j]) for j, value in clause]
    if not lits:
        return z3.BoolVal(False, next(iter(m.values())).ctx)
    return lits[0] if bare_unit and len(lits) == 1 else z3.Or(lits)


def hard_constraints(z3, rows: list[Row], m: dict, options: Z3Options = Z3Options()) -> list:
    """The rows as exact z3 constraints (clauses where narrow, LRA where wide)."""
    clauses = threshold_clauses if options.minimal_cnf else blocking_clauses
    ctx = next(iter(m.values())).ctx if m else None  # the variables' context (each search has its own)
    out = []
    for coef, r in rows:
        if len(coef) <= options.table_arity:
            out += [_z3_clause(z3, clause, m, options.minimal_cnf) for clause in clauses(coef, r)]
        else:
            terms = [z3.If(m[j], _real(z3, a, ctx), z3.RealVal(0, ctx)) for j, a in coef.items()]
            out.append(z3.Sum(terms) > _real(z3, r, ctx))
    return out


class _Best:
    """The smallest mask seen so far that passed the exact check."""

    def __init__(self, rows: list[Row], variables: list[int], start: np.ndarray | None):
        self.rows, self.variables = rows, variables
        self.mask = None if start is None else np.asarray(start, dtype=bool).copy()

    def size(self) -> int:
        return -1 if self.mask is None else int(self.mask.sum())

    def offer(self, mask: np.ndarray) -> bool:
        on = {j for j, b in zip(self.variables, mask) if b}
        if (self.mask is None or mask.sum() < self.mask.sum()) and satisfies(self.rows, on):
            self.mask = mask
            return True
        return False


def minimise(rows: list[Row], variables: np.ndarray, start: np.ndarray | None, deadline: float,
             lower_bound: int = 0, options: Z3Options = Z3Options()) -> SearchResult:
    """Smallest mask over ``variables`` satisfying ``rows``; proven when the search finishes."""
    import z3

    t0 = time.perf_counter()
    variables = [int(v) for v in variables]
    ctx = z3.Context()  # a context per search: nothing of an earlier search (or job) steers this one
    m = {j: z3.Bool(f"m{j}", ctx) for j in variables}
    best = _Best(rows, variables, start)

    def read(model) -> np.ndarray:
        return np.array([z3.is_true(model.eval(m[j], model_completion=True)) for j in variables])

    hard = hard_constraints(z3, rows, m, options)
    if best.mask is not None and any(len(coef) > options.table_arity for coef, _ in rows):
        lb = ascend(z3, hard, [m[j] for j in variables], lower_bound, best.size,
                    lambda model: best.offer(read(model)), deadline)
    else:
        lb = _maxsat(z3, hard, m, variables, best, read, deadline, lower_bound, options.maxsat_engine)
        if lb is None:
            return SearchResult(None, lower_bound, True, time.perf_counter() - t0)
    proven = best.mask is not None and best.size() <= lb
    return SearchResult(best.mask, lb, proven, time.perf_counter() - t0)


def adopted(rows: list[Row], variables: list[int], cand: np.ndarray, k: int):
    """A tie-break question's model ``cand`` if it is a mask of at most ``k`` that satisfies the rows
    exactly, else :data:`~smug.solver.tie_break.UNDECIDED` (never adopt a model the exact check rejects)."""
    ok = cand.sum() <= k and satisfies(rows, {v for v, b in zip(variables, cand) if b})
    return cand if ok else UNDECIDED


def canonical(rows: list[Row], variables: np.ndarray, mask: np.ndarray, deadline: float,
              options: Z3Options = Z3Options()) -> tuple[np.ndarray, bool]:
    """The canonical minimum mask of ``rows`` (:mod:`smug.solver.tie_break`) from ``mask``, a minimum
    one (proven), over ``variables`` (increasing), and whether the greedy completed before
    ``deadline``.  The questions go to one z3 solver (the rows exactly, at most ``mask.sum()`` on),
    each under assumptions."""
    import z3

    variables = [int(v) for v in variables]
    k = int(np.sum(mask))
    ctx = z3.Context()
    m = {j: z3.Bool(f"m{j}", ctx) for j in variables}
    narrow = all(len(coef) <= options.table_arity for coef, _ in rows)
    solver = z3.SolverFor("QF_FD", ctx=ctx) if narrow else z3.Solver(ctx=ctx)  # clauses: z3's SAT core
    solver.add(*hard_constraints(z3, rows, m, options))
    solver.add(z3.AtMost(*m.values(), k))

    def ask(decided: dict[int, bool], j: int):
        assumptions = [m[v] if on else z3.Not(m[v]) for v, on in decided.items()]
        answer = _check(solver, deadline, *assumptions, z3.Not(m[j]))
        if answer == z3.unsat:
            return None
        if answer != z3.sat:
            return UNDECIDED
        model = solver.model()
        cand = np.array([z3.is_true(model.eval(m[v], model_completion=True)) for v in variables])
        return adopted(rows, variables, cand, k)

    return least_minimum(variables, mask, deadline, ask)


@contextmanager
def interrupted_at(deadline: float, interrupt: Callable[[], None]) -> Iterator[threading.Event]:
    """Call ``interrupt`` at ``deadline``; the event says whether it was called.

    The event is set *before* ``interrupt`` runs, so an answer obtained while the event is clear
    was never cut short.  RC2's own ``interrupted`` flag is not enough: it is reset when
    ``compute`` starts its loop (:mod:`~smug.solver.rc2_backend`) and set after the oracle is interrupted, so an interrupt landing
    outside that window makes an interrupted run look finished and its empty core look like
    "the clauses are unsatisfiable" (seen: 1 run in 180 at a 0.4 s budget on a 551-block
    component whose all-on mask satisfies every row)."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        interrupt()

    timer = threading.Timer(max(0.0, deadline - time.perf_counter()), fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def _check(solver, deadline: float, *assumptions):
    """``solver.check(*assumptions)`` held to ``deadline``: z3's own timeout is soft (a MaxSAT check
    was seen running 49 s past a 3 s timeout), so a timer also interrupts the context.  An
    interrupted check answers ``unknown``: z3 reports the cancellation as a ``Z3Exception``
    ("canceled"), also when it struck inside a model callback (issue 31), and nothing was proven.

    An ``unsat`` that arrives after ``deadline`` is ``unknown`` too: z3's own timeout (set from the
    time left, so it expires after ``deadline``) and the interrupt both land there, and a cut-short
    core-guided ``Optimize`` is not trusted to tell "out of time" from "no model"."""
    import z3

    with interrupted_at(deadline + INTERRUPT_SLACK, solver.ctx.interrupt) as fired:
        try:
            answer = solver.check(*assumptions)
        except z3.Z3Exception:
            return z3.unknown
    late = fired.is_set() or time.perf_counter() >= deadline
    return z3.unknown if answer == z3.unsat and late else answer


def _guarded(offer: Callable[[object], object]) -> Callable[[object], None]:
    """A model callback that skips a model z3 cancelled while it was being read (the check then
    answers ``unknown``, :func:`_check`) instead of raising inside z3."""
    import z3

    def on_model(model) -> None:
        try:
            offer(model)
        except z3.Z3Exception:
            pass

    return on_model


def _maxsat(z3, hard, m, variables, best: _Best, read, deadline: float, lb: int,
            engine: str = MAXSAT_ENGINE) -> int | None:
    """Core-guided MaxSAT (one soft ``not m_j`` each); None when the rows are unsatisfiable."""
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return lb
    opt = z3.Optimize(ctx=next(iter(m.values())).ctx if m else None)
    opt.set("timeout", max(1, int(remaining * 1000)))
    opt.set("maxsat_engine", engine)
    opt.add(*hard)
    handle = None
    for j in variables:
        handle = opt.add_soft(z3.Not(m[j]), 1, "size")
    opt.set_on_model(_guarded(lambda model: best.offer(read(model))))
    answer = _check(opt, deadline)
    if answer == z3.sat:
        best.offer(read(opt.model()))
        if handle is not None:
            lb = max(lb, int(str(handle.lower())))
    elif answer == z3.unsat:
        return None
    return lb


def ascend(z3, hard, literals: list, lb: int, size: Callable[[], float], offer: Callable[[object], bool],
           deadline: float) -> int:
    """Ascending cardinality search: unsat under ``AtMost(literals, k)`` proves every mask has
    more than k true literals; returns the proven lower bound.  ``size()`` is the best mask's
    size so far (inf: none yet); ``offer(model)`` takes a sat model and says whether it passed
    the exact check (a model that fails it stops the search: stay honest).

    Used where wide (LRA) rows make MaxSAT slow and the optimum is small (MNIST); a fresh
    solver per step is faster than push/pop (solver-facts.md)."""
    while lb < size() and lb <= len(literals):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        s = z3.Solver(ctx=literals[0].ctx if literals else None)
        s.set("timeout", max(1, int(remaining * 1000)))
        s.add(*hard)
        s.add(z3.AtMost(*literals, lb))
        answer = _check(s, deadline)
        if answer == z3.unsat:
            lb += 1
        elif answer != z3.sat or not offer(s.model()):
            break
    return lb
