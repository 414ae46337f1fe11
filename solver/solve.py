"""One entry point for every mask question: find, improve, prove, certify.

1. Split the problem into independent components (exact, structural).
2. Start from a verified mask (every variable a constraint reads switched on).
3. ``backend="auto"`` (with ``prove``): components whose rows all compile to clauses
   (:data:`~smug.solver.z3_backend.TABLE_ARITY`) go straight to z3's exact MaxSAT,
   for at most ``EXACT_SHARE`` of the time left.  On the hard 7x7 first-layer family
   this proves in about 1 s what HiGHS does not prove in 120 s (docs/benchmarks.md).
4. Get a candidate from HiGHS (``backend="highs"``, or ``"auto"`` for what step 3
   left open), kept per component only where it passes the exact check.  When a
   proof follows, HiGHS gets at most ``HIGHS_SHARE`` of the time left: its own
   optimality proof is in floating point and never used, only its incumbent.
5. Prove each remaining component optimal with z3 (``prove``), which also repairs
   any candidate that the float margin made sub-optimal.
6. Canonical tie-break (one answer per request, issue 31): once every component is
   proven, its mask is replaced by the canonical minimum mask
   (:mod:`smug.solver.tie_break`: the least bit string over the component's variables
   in index order, i.e. the one leaving out the lowest-numbered variables it can; the
   questions go to python-sat when installed, else z3), so every backend, process and
   run returns the same mask.  The
   pass runs until the same deadline; the answer's ``stats["tie_break"]`` says whether
   it completed (a minimum mask either way).
7. Certify the combined mask exactly.  ``status`` is ``optimal`` only when every
   component was proven by the exact solver; on a timeout the best verified mask
   comes back as ``feasible`` with the best proven lower bound.

The time shares and the z3 encoding are :class:`SolveOptions` (defaults: the tuned
values; the benchmark's ablations pass others).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from smug.deadline import DEFAULT_TIMEOUT
from smug.events import Improved, Progress
from smug.ir import LinearForm, MaskProblem, linear_form
from smug.solver.backends import FIRST_LAYER, check_backend
from smug.solver.certificate import Certificate, certify
from smug.solver import rc2_backend
from smug.solver.components import Component, split
from smug.solver.exact import collapsed_rows
from smug.solver.z3_backend import Row, Z3Options, canonical, minimise, satisfies

BACKENDS = FIRST_LAYER  # alias: the registry in smug.solver.backends owns the list
STATUSES = ("optimal", "feasible", "infeasible", "unknown")
EXACT_SHARE = 0.5  # "auto": share of the time left for z3 before HiGHS is asked
Z3_SHARE = 0.5  # of a clause-only component's time, z3's before RC2 gets the rest (issue 31)
HIGHS_SHARE = 0.25  # share of the time left for the HiGHS candidate when a proof follows
CERTIFY_RESERVE = 0.5  # time kept for certify(), relative to the exact encoding's time

FREE_ROW_FAILS = "a constraint reads no mask variable and fails"
UNSATISFIABLE = "z3: component unsatisfiable"
NO_MASK = "no verified mask before the deadline"
CERTIFY_FAILED = "combined mask failed the exact check"
PROVEN = ("exact: in every component the lower bound (z3 MaxSAT or cardinality search over exactly computed "
          "constraints, or the empty mask failing exactly) equals the mask size; mask certified exactly")
NOT_PROVEN = "not proven optimal: best verified mask and best proven lower bound"
CANONICAL = "canonical: the least minimum mask in variable order (lowest-numbered variables left out first)"
NOT_CANONICAL = ("not completed before the deadline: a minimum mask, maybe not the canonical one (another run "
                 "may return another minimum mask of the same size)")


@dataclass(frozen=True)
class Solution:
    status: str
    mask: np.ndarray | None  # bool per mask variable
    objective: int | None
    lower_bound: int
    backend: str
    proof: str
    certificate: Certificate | None
    components: int  # independent parts of a first-layer problem (0 for whole networks)
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)  # backend facts, e.g. unstable ReLUs

    @property
    def proven_optimal(self) -> bool:
        return self.status == "optimal"

    @classmethod
    def optimal(cls, mask: np.ndarray, backend: str, proof: str, certificate: Certificate | None, *,
                components: int = 0, timings: dict[str, float] | None = None, stats: dict | None = None) -> Solution:
        """A proven minimal ``mask``: objective and lower bound are its size."""
        size = int(mask.sum())
        return cls("optimal", mask, size, size, backend, proof, certificate, components,
                   _or_empty(timings), _or_empty(stats))

    @classmethod
    def feasible(cls, mask: np.ndarray, lower_bound: int, backend: str, proof: str,
                 certificate: Certificate | None, *, components: int = 0, timings: dict[str, float] | None = None,
                 stats: dict | None = None) -> Solution:
        """A verified ``mask`` (objective: its size) that is not proven minimal."""
        return cls("feasible", mask, int(mask.sum()), lower_bound, backend, proof, certificate, components,
                   _or_empty(timings), _or_empty(stats))

    @classmethod
    def infeasible(cls, backend: str, proof: str, *, components: int = 0, timings: dict[str, float] | None = None,
                   stats: dict | None = None) -> Solution:
        """Proven: no mask satisfies the problem."""
        return cls("infeasible", None, None, 0, backend, proof, None, components, _or_empty(timings), _or_empty(stats))

    @classmethod
    def unknown(cls, backend: str, proof: str, lower_bound: int = 0, certificate: Certificate | None = None, *,
                components: int = 0, timings: dict[str, float] | None = None, stats: dict | None = None) -> Solution:
        """No verified mask; ``lower_bound`` is still proven."""
        return cls("unknown", None, None, lower_bound, backend, proof, certificate, components,
                   _or_empty(timings), _or_empty(stats))


def _or_empty(d: dict | None) -> dict:
    return {} if d is None else d


@dataclass(frozen=True)
class SolveOptions:
    """Tuning of :func:`solve`; the defaults are the tuned ones (docs/benchmarks.md)."""

    exact_share: float = EXACT_SHARE
    highs_share: float = HIGHS_SHARE
    certify_reserve: float = CERTIFY_RESERVE
    z3_share: float = Z3_SHARE  # of a clause-only component's time, z3's before RC2 (when installed)
    z3: Z3Options = Z3Options()  # row encoding and MaxSAT engine


def check_request(kind: str, backend: str, timeout: float) -> None:
    """The checks every solver entry point makes on its arguments (the backend by the registry)."""
    check_backend(kind, backend, portfolio=False)
    if timeout <= 0:
        raise ValueError("timeout must be positive")


class _Unsatisfiable(Exception):
    """z3 proved a component unsatisfiable: the whole problem is infeasible."""


class _Search:
    """Per-component state: the best verified mask (``best``, where ``have``) and proven lower bounds."""

    def __init__(self, n_vars: int, comps: list[Component], rows_of: list[list[Row]], options: SolveOptions,
                 progress: Progress | None, t0: float):
        self.comps, self.rows_of, self.options = comps, rows_of, options
        self.progress, self.t0 = progress, t0
        self.best = np.zeros(n_vars, dtype=bool)
        for c in comps:
            self.best[c.vars] = True
        self.have = [satisfies(rows, set(c.vars.tolist())) for c, rows in zip(comps, rows_of)]
        self.lbs = [1 if any(r >= 0 for _, r in rows) else 0 for rows in rows_of]  # the empty mask fails a row
        self.reported: tuple[int, int] | None = None  # last (size, lower bound) sent to ``progress``

    @property
    def lower_bound(self) -> int:
        return int(sum(self.lbs))

    def closed(self, n: int) -> bool:
        """Component n has a verified mask as small as its proven lower bound."""
        return self.have[n] and int(self.best[self.comps[n].vars].sum()) <= self.lbs[n]

    def open_components(self) -> list[int]:
        return [n for n in range(len(self.comps)) if not self.closed(n)]

    def all_closed(self) -> bool:
        return all(self.closed(n) for n in range(len(self.comps)))

    def is_narrow(self, n: int) -> bool:
        """Every row of component n compiles to clauses."""
        return all(len(coef) <= self.options.z3.table_arity for coef, _ in self.rows_of[n])

    def offer(self, n: int, mask: np.ndarray) -> bool:
        """Whether ``mask`` passes component n exactly; kept when it is also smaller."""
        c = self.comps[n]
        ok = satisfies(self.rows_of[n], set(c.vars[mask].tolist()))
        if ok and (not self.have[n] or mask.sum() < self.best[c.vars].sum()):
            self.best[c.vars], self.have[n] = mask, True
            self.report()
        return ok

    def exact(self, n: int, until: float) -> None:
        """z3 on component n until ``until`` (a clause-only component: z3 for ``options.z3_share`` of the time,
        then, if it did not prove it, python-sat's RC2 on the same clauses, when installed); raises
        :class:`_Unsatisfiable` when either proves no mask exists and none was verified exactly
        (a verified mask wins over any engine's claim: infeasible is never said of a problem that
        has a checked answer)."""
        c = self.comps[n]
        start = self.best[c.vars] if self.have[n] else None
        second = self.is_narrow(n) and rc2_backend.available()
        t = time.perf_counter()
        found = minimise(self.rows_of[n], c.vars, start, t + self.options.z3_share * (until - t) if second else until,
                         self.lbs[n], self.options.z3)
        if second and not found.proven:
            self.lbs[n] = max(self.lbs[n], found.lower_bound)
            other = rc2_backend.minimise_rc2(self.rows_of[n], c.vars, until, self.lbs[n])
            found = other if other.proven else found
        if found.mask is None:
            if found.proven and not self.have[n]:  # a verified mask refutes any "unsatisfiable"
                raise _Unsatisfiable
            return
        self.best[c.vars], self.have[n] = found.mask, True
        self.lbs[n] = max(self.lbs[n], found.lower_bound)
        self.report()

    def report(self) -> None:
        """Tell ``progress`` when every component has a mask and the size shrank or the bound grew."""
        if self.progress is None or not all(self.have):
            return
        size, lower = int(self.best.sum()), self.lower_bound
        if self.reported is None or size < self.reported[0] or lower > self.reported[1]:
            self.reported = (size, lower)
            self.progress(Improved(size, lower, time.perf_counter() - self.t0, self.best.copy()))


def solve(
    problem: MaskProblem, backend: str = "auto", timeout: float = DEFAULT_TIMEOUT, prove: bool = True, margin: float = 1e-4,
    progress: Progress | None = None, options: SolveOptions | None = None,
) -> Solution:
    """Minimal mask for ``problem`` (see the module docstring).  ``progress`` (optional) is
    called with an :class:`~smug.events.Improved` (size, lower bound, seconds, mask) whenever
    the verified mask shrinks or the proven lower bound grows.  ``options``: tuning and
    ablations (:class:`SolveOptions`; default: the tuned values)."""
    check_request("first-layer", backend, timeout)
    options = SolveOptions() if options is None else options
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    comps, free_rows = split(problem)
    all_rows = collapsed_rows(problem, np.arange(problem.n_constraints))
    timings["encode_exact"] = time.perf_counter() - t0
    # keep time for the final exact certificate (about half the exact encoding's cost)
    deadline = t0 + timeout - min(options.certify_reserve * timings["encode_exact"], 0.25 * timeout)
    if not all(0 > all_rows[i][1] for i in free_rows):
        return Solution.infeasible(backend, FREE_ROW_FAILS, components=len(comps), timings=timings)

    comps = sorted(comps, key=lambda c: len(c.vars))
    search = _Search(problem.n_vars, comps, [[all_rows[i] for i in c.rows] for c in comps], options, progress, t0)
    search.report()  # the starting mask, when every component has one
    try:
        have_all = _run_phases(problem, search, backend, prove, margin, deadline, timings)
    except _Unsatisfiable:
        return Solution.infeasible(backend, UNSATISFIABLE, components=len(comps), timings=timings)
    if not have_all:
        return Solution.unknown(backend, NO_MASK, components=len(comps), timings=timings)
    tie_break = _tie_break(search, deadline, timings) if search.all_closed() else None
    return _certified(problem, search, backend, timings, t0, tie_break)


def _tie_break(search: _Search, deadline: float, timings: dict[str, float]) -> str:
    """Step 6: every (proven) component's mask made the canonical one, until ``deadline``."""
    t, completed = time.perf_counter(), True
    sat = rc2_backend.available()
    for n, c in enumerate(search.comps):
        if sat and search.is_narrow(n):  # the same answer as z3's, in a fraction of the time
            mask, done = rc2_backend.canonical_sat(search.rows_of[n], c.vars, search.best[c.vars], deadline)
        else:
            mask, done = canonical(search.rows_of[n], c.vars, search.best[c.vars], deadline, search.options.z3)
        search.best[c.vars] = mask
        completed = completed and done
    timings["tie_break"] = time.perf_counter() - t
    return CANONICAL if completed else NOT_CANONICAL


def _run_phases(problem: MaskProblem, search: _Search, backend: str, prove: bool, margin: float, deadline: float,
                timings: dict[str, float]) -> bool:
    """Exact-first, HiGHS candidate, proof; False when a component ends without a verified mask."""
    if backend == "auto" and prove:  # exact first where every row is a clause set
        t = time.perf_counter()
        _exact_first(search, t + search.options.exact_share * max(0.0, deadline - t))
        timings["exact_first"] = time.perf_counter() - t
    open_ = search.open_components()
    if backend in ("auto", "highs") and open_:
        t = time.perf_counter()
        share = search.options.highs_share if prove else 1.0  # without a proof HiGHS may take all the time
        _highs_candidate(problem, search, open_, t + share * max(0.0, deadline - t), margin)
        timings["highs"] = time.perf_counter() - t
    t = time.perf_counter()
    have_all = _prove(search, open_, deadline, keep_candidates=not prove and backend != "z3")
    if have_all:
        timings["prove"] = time.perf_counter() - t
    return have_all


def _exact_first(search: _Search, until: float) -> None:
    """z3 on the components whose rows all compile to clauses, smallest first, until ``until``."""
    for n in range(len(search.comps)):
        if search.closed(n) or not search.is_narrow(n):
            continue
        if time.perf_counter() >= until:
            break
        search.exact(n, until)


def _highs_candidate(problem: MaskProblem, search: _Search, open_: list[int], until: float, margin: float) -> None:
    """HiGHS on the open components at once; each component keeps the candidate where it passes
    exactly.  A candidate failing somewhere is retried with a 10x larger margin (3 tries)."""
    from smug.solver.highs_backend import solve_milp

    comps = search.comps
    rows = np.concatenate([comps[n].rows for n in open_])
    cols = np.concatenate([comps[n].vars for n in open_])
    form = linear_form(problem)
    sub = LinearForm(A=form.A[rows][:, cols].tocsr(), const=form.const[rows], rhs=form.rhs[rows])
    where = {int(j): t for t, j in enumerate(cols)}
    for attempt in range(3):
        res = solve_milp(sub, max(0.01, until - time.perf_counter()), margin * 10**attempt, start=search.best[cols])
        if res.mask is None:
            continue
        passed = [search.offer(n, res.mask[[where[int(j)] for j in comps[n].vars]]) for n in open_]
        if all(passed) or time.perf_counter() >= until:
            break


def _prove(search: _Search, open_: list[int], deadline: float, keep_candidates: bool) -> bool:
    """z3 on every open component until ``deadline`` (``keep_candidates``: only where HiGHS
    left no verified mask); False when a component ends without one."""
    for n in open_:
        if search.closed(n) or (keep_candidates and search.have[n]):
            continue
        if search.have[n] and time.perf_counter() >= deadline:  # out of time: keep its verified mask
            continue
        search.exact(n, deadline)
        if not search.have[n]:
            return False
    return True


def _certified(problem: MaskProblem, search: _Search, backend: str, timings: dict[str, float],
               t0: float, tie_break: str | None = None) -> Solution:
    """The combined mask, certified exactly: ``optimal`` when every component is closed (with
    ``stats["tie_break"]``: whether it is the canonical minimum mask)."""
    proven_all, lower = search.all_closed(), search.lower_bound
    t = time.perf_counter()
    cert = certify(problem, search.best)
    timings["certify"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    common = dict(components=len(search.comps), timings=timings)
    if not cert.valid:  # cannot happen unless a component check above is wrong
        return Solution.unknown(backend, CERTIFY_FAILED, lower, cert, **common)
    if proven_all:
        return Solution.optimal(search.best, backend, PROVEN if tie_break == CANONICAL else f"{PROVEN}; tie-break "
                                f"{tie_break}", cert, stats={"tie_break": tie_break}, **common)
    return Solution.feasible(search.best, lower, backend, NOT_PROVEN, cert, **common)
