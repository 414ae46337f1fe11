"""Independent engines over parsed dumps: components, exact clause compilation, RC2, z3, HiGHS.

Nothing here uses smug's solver: the clauses are one blocking clause per failing assignment
of a row (enumerated with exact integers), solved by python-sat's RC2; wide rows go to z3 as
exact Linear Real Arithmetic with a cardinality bound; LP/MPS models to HiGHS as read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction

from smug.debugging.reader import DumpError, ParsedDump, Row
from smug.common import quiet_highs

CLAUSE_ARITY = 16  # rows over at most this many variables are compiled to clauses


@dataclass
class Component:
    variables: list[str]
    rows: list[int]  # indices into dump.rows (or dump.clauses for wcnf)


def components(dump: ParsedDump) -> list[Component]:
    """Mask variables that share no row are independent: connected components of rows and variables."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    items = ([list(r.coef) for r in dump.rows] if dump.rows else [[n for n, _ in c] for _, c in dump.clauses])
    for names in items:
        for n in names:
            find(n)
        for n in names[1:]:
            parent[find(n)] = find(names[0])
    groups: dict[str, Component] = {}
    for i, names in enumerate(items):
        if names:
            groups.setdefault(find(names[0]), Component([], [])).rows.append(i)
    for n in list(parent):
        root = find(n)
        if root in groups:
            groups[root].variables.append(n)
    return sorted(groups.values(), key=lambda c: -len(c.variables))


def failing_assignments(row: Row) -> list[dict[str, bool]]:
    """Every assignment of the row's variables under which it fails, by exact integer subset sums."""
    names = sorted(row.coef)
    den = row.r.denominator
    for n in names:
        den = math.lcm(den, row.coef[n].denominator)
    ints = [int(row.coef[n] * den) for n in names]
    rhs = int(row.r * den)
    sums = [0]
    for a in ints:
        sums = sums + [s + a for s in sums]
    bad = []
    for u, s in enumerate(sums):
        if not (s > rhs if row.strict else s >= rhs):
            bad.append({n: bool((u >> t) & 1) for t, n in enumerate(names)})
    return bad


def row_clauses(row: Row) -> list[list[tuple[str, bool]]]:
    """Clauses that hold exactly when the row does (one blocking clause per failing assignment)."""
    return [[(n, not v) for n, v in bad.items()] for bad in failing_assignments(row)]


def rc2_minimum(clauses: list[list[tuple[str, bool]]], variables: list[str], deadline: float) -> set[str] | None:
    """A minimum set of true variables satisfying the clauses (RC2); None when unsatisfiable."""
    from pysat.examples.rc2 import RC2
    from pysat.formula import WCNF

    number = {n: k + 1 for k, n in enumerate(variables)}
    w = WCNF()
    for clause in clauses:
        w.append([number[n] if v else -number[n] for n, v in clause])
    for n in variables:
        w.append([-number[n]], weight=1)
    with RC2(w) as rc2:
        model = rc2.compute()
    if model is None:
        return None
    return {variables[abs(l) - 1] for l in model if l > 0 and abs(l) <= len(variables)}


def z3_smaller(rows: list[Row], variables: list[str], k: int, deadline: float) -> tuple[str, set[str] | None]:
    """z3 over the exact rows: a mask with at most ``k`` variables ("sat", mask), none ("unsat"), or "unknown"."""
    import z3

    m = {n: z3.Bool(n) for n in variables}
    s = z3.Solver()
    s.set("timeout", max(1, int((deadline - time.perf_counter()) * 1000)))
    for row in rows:
        terms = [z3.If(m[n], z3.RealVal(f"{a.numerator}/{a.denominator}"), z3.RealVal(0)) for n, a in row.coef.items()]
        rhs = z3.RealVal(f"{row.r.numerator}/{row.r.denominator}")
        s.add(z3.Sum(terms) > rhs if row.strict else z3.Sum(terms) >= rhs)
    s.add(z3.AtMost(*[m[n] for n in variables], k) if variables else z3.BoolVal(k >= 0))
    answer = s.check()
    if answer == z3.sat:
        model = s.model()
        return "sat", {n for n in variables if z3.is_true(model.eval(m[n], model_completion=True))}
    return ("unsat" if answer == z3.unsat else "unknown"), None


def component_minimum(dump: ParsedDump, comp: Component, kept: int, deadline: float) -> dict:
    """The component's optimum by the engine that fits, compared with ``kept`` (the result's count there)."""
    t0 = time.perf_counter()
    if dump.format == "wcnf":
        mask = rc2_minimum([dump.clauses[i][1] for i in comp.rows], comp.variables, deadline)
        engine = "rc2 (wcnf clauses)"
    else:
        rows = [dump.rows[i] for i in comp.rows]
        if max(len(r.coef) for r in rows) <= CLAUSE_ARITY:
            clauses = [c for r in rows for c in row_clauses(r)]
            mask = rc2_minimum(clauses, comp.variables, deadline)
            engine = "rc2 (clauses compiled from the rows)"
        else:
            engine = "z3 (exact LRA, at most k-1)"
            if kept == 0:
                return {"engine": engine, "optimum": 0, "smaller": None, "seconds": time.perf_counter() - t0}
            answer, mask = z3_smaller(rows, comp.variables, kept - 1, deadline)
            if answer == "unknown":
                raise DumpError(f"z3 did not decide a component of {len(comp.variables)} variables before the deadline")
            out = {"engine": engine, "optimum": kept if answer == "unsat" else len(mask), "smaller": mask,
                   "seconds": time.perf_counter() - t0}
            return out
    if mask is None:
        return {"engine": engine, "optimum": None, "smaller": None, "seconds": time.perf_counter() - t0}
    return {"engine": engine, "optimum": len(mask), "smaller": mask if len(mask) < kept else None,
            "seconds": time.perf_counter() - t0}


def satisfiable(rows: list[Row]) -> bool:
    """Whether some mask satisfies every row (exact; RC2 for narrow rows, z3 otherwise)."""
    variables = sorted({n for r in rows for n in r.coef})
    if all(len(r.coef) <= CLAUSE_ARITY for r in rows):
        return rc2_minimum([c for r in rows for c in row_clauses(r)], variables, math.inf) is not None
    answer, _ = z3_smaller(rows, variables, len(variables), time.perf_counter() + 60)
    return answer == "sat"


def minimal_core(rows: list[Row]) -> list[Row]:
    """A minimal unsatisfiable subset of unsatisfiable rows (deletion-based; singletons first)."""
    for r in rows:
        if not satisfiable([r]):
            return [r]
    core = list(rows)
    i = 0
    while i < len(core):
        trial = core[:i] + core[i + 1:]
        if not satisfiable(trial):
            core = trial
        else:
            i += 1
    return core


# ---- whole networks (smt2: exact evaluation with pysmt, z3 for minimality) -------------
def evaluate(f, env: dict):
    """The exact value of a pysmt term under ``env`` (Bool and Fraction values)."""
    if f.is_constant():
        v = f.constant_value()
        return v if isinstance(v, bool) else Fraction(int(v.numerator), int(v.denominator))
    if f.is_symbol():
        name = f.symbol_name()
        if name not in env:
            raise DumpError(f"{name} is used before it is defined")
        return env[name]
    args = [evaluate(a, env) for a in f.args()] if not f.is_ite() else None
    if f.is_ite():
        c = evaluate(f.arg(0), env)
        return evaluate(f.arg(1) if c else f.arg(2), env)
    if f.is_plus():
        return sum(args, Fraction(0))
    if f.is_minus():
        return args[0] - args[1]
    if f.is_times():
        out = Fraction(1)
        for a in args:
            out *= a
        return out
    if f.is_div():
        return args[0] / args[1]
    if f.is_lt():
        return args[0] < args[1]
    if f.is_le():
        return args[0] <= args[1]
    if f.is_equals() or f.is_iff():
        return args[0] == args[1]
    if f.is_not():
        return not args[0]
    if f.is_and():
        return all(args)
    if f.is_or():
        return any(args)
    raise DumpError(f"an unexpected term {f.node_type()} in the network")


def network_run(dump: ParsedDump, on: set[str]) -> tuple[str | None, dict]:
    """Run the dumped network on a mask: (the first failing statement or None, the values)."""
    env: dict = {n: (n in on) for n in dump.variables}
    for name, f in dump.statements:
        if f.is_equals() and f.arg(0).is_symbol() and f.arg(0).symbol_name() not in env:
            env[f.arg(0).symbol_name()] = evaluate(f.arg(1), env)
        elif not evaluate(f, env):
            return name, env
    return None, env


def network_smaller(dump: ParsedDump, k: int, deadline: float) -> tuple[str, set[str] | None]:
    """z3 on the dump's own text plus ``AtMost(mask, k)``."""
    import z3

    from smug.debugging.reader import Z3_EXTENSION

    body = "\n".join(l for l in dump.text.splitlines() if not l.lstrip().startswith(Z3_EXTENSION))
    s = z3.Solver()
    s.set("timeout", max(1, int((deadline - time.perf_counter()) * 1000)))
    s.from_string(body)
    m = [z3.Bool(n) for n in dump.variables]
    s.add(z3.AtMost(*m, k) if m else z3.BoolVal(True))
    answer = s.check()
    if answer == z3.sat:
        model = s.model()
        return "sat", {n for n, v in zip(dump.variables, m) if z3.is_true(model.eval(v, model_completion=True))}
    return ("unsat" if answer == z3.unsat else "unknown"), None


def highs_minimum(dump: ParsedDump, fixed: set[str] | None = None, at_most: int | None = None) -> tuple[bool, set[str], float]:
    """Solve the LP/MPS model with HiGHS (optionally the mask fixed to ``fixed``, or ``sum m <= at_most``):
    (feasible, the mask, objective)."""
    import highspy
    import numpy as np

    h = quiet_highs()
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("threads", 1)
    h.passModel(dump.highs.getLp())
    lp = h.getLp()
    cols = list(lp.col_names_)
    index = {n: j for j, n in enumerate(cols)}
    mask_cols = [index[n] for n in dump.variables]
    if fixed is not None:
        for j in mask_cols:
            v = 1.0 if cols[j] in fixed else 0.0
            h.changeColBounds(j, v, v)
    if at_most is not None:
        h.addRow(-highspy.kHighsInf, float(at_most), len(mask_cols), np.asarray(mask_cols, dtype=np.int32),
                 np.ones(len(mask_cols)))
    h.run()
    info = h.getInfo()
    if info.primal_solution_status != 2:
        return False, set(), math.inf
    x = np.asarray(h.getSolution().col_value)
    return True, {cols[j] for j in mask_cols if x[j] > 0.5}, float(info.objective_function_value)


def _network_program(dump: ParsedDump):
    """The dumped network as a straight-line program read from its statements (pysmt terms)."""
    from smug.debugging.reader import _row, linear

    program, checks, defined = [], [], set(dump.variables)
    for name, f in dump.statements:
        if f.is_equals() and f.arg(0).is_symbol() and f.arg(0).symbol_name() not in defined:
            target, expr = f.arg(0).symbol_name(), f.arg(1)
            if expr.is_ite() and not expr.arg(0).is_symbol():
                cond, then, other = expr.args()
                if not (then.is_symbol() and other.is_constant() and cond.is_lt()
                        and cond.arg(1) == then and _q0(cond.arg(0)) and _q0(other)):
                    raise DumpError(f"statement {name} is not a ReLU smug writes")
                program.append((target, "relu", then.symbol_name()))
            else:
                program.append((target, "lin", linear(expr)))
            defined.add(target)
        else:
            checks.append(_row(name, f))
    return program, checks


def _q0(f) -> bool:
    return f.is_constant() and f.constant_value() == 0


def network_enum_smaller(dump: ParsedDump, k: int, deadline: float, limit: int = 3_000_000,
                         screen: float = 1e-6) -> tuple[str, set[str] | None]:
    """Every mask of at most ``k`` read variables, run in float64 (batches); a mask whose margins all
    come within ``screen`` of passing is re-run exactly (:func:`network_run`).  ("sat", mask),
    ("unsat", None), or ("unknown", None) when there are more than ``limit`` masks."""
    import itertools

    import numpy as np

    names = list(dump.variables)
    n = len(names)
    total = sum(math.comb(n, i) for i in range(k + 1))
    if total > limit:
        return "unknown", None
    program, checks = _network_program(dump)
    col = {v: j for j, v in enumerate(names)}

    def run(masks: np.ndarray) -> np.ndarray:
        vals = {v: masks[:, j].astype(np.float64) for v, j in col.items()}
        for target, op, arg in program:
            if op == "relu":
                vals[target] = np.maximum(vals[arg], 0.0)
            else:
                coef, const = arg
                out = np.full(masks.shape[0], float(const))
                for v, a in coef.items():
                    out += float(a) * vals[v]
                vals[target] = out
        worst = np.full(masks.shape[0], np.inf)
        for row in checks:
            value = np.zeros(masks.shape[0])
            for v, a in row.coef.items():
                value += float(a) * vals[v]
            worst = np.minimum(worst, (value - float(row.r)) / max(1.0, abs(float(row.r))))
        return worst

    for size in range(k + 1):
        combos = itertools.combinations(range(n), size)
        while True:
            chunk = list(itertools.islice(combos, 20000))
            if not chunk:
                break
            if time.perf_counter() > deadline:
                return "unknown", None
            masks = np.zeros((len(chunk), n), dtype=bool)
            for b, c in enumerate(chunk):
                masks[b, list(c)] = True
            for b in np.flatnonzero(run(masks) > -screen):
                on = {names[j] for j in chunk[b]}
                if network_run(dump, on)[0] is None:
                    return "sat", on
    return "unsat", None
