"""Parse a smug dump (smt2, wcnf, lp, mps) into exact rows, clauses or a HiGHS model.

SMT-LIB2 is read with pysmt, WCNF with python-sat, LP/MPS with HiGHS; nothing here imports
the writer (:mod:`smug.solver`).  Every malformed input raises :class:`DumpError` with one
line that says what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

MARK = "smug-dump"
COMMENTS = {"smt2": ";", "wcnf": "c", "lp": "\\", "mps": "*"}
Z3_EXTENSION = ("(minimize", "(maximize", "(get-objectives")


class DumpError(ValueError):
    """A dump or result that cannot be read or does not fit: one line for the user."""


@dataclass
class Row:
    """``sum_j coef[name_j] * m_j > r`` over mask variables (exact; ``strict`` False: ``>=``)."""

    name: str
    coef: dict[str, Fraction]
    r: Fraction
    strict: bool = True

    def value(self, on: set[str]) -> Fraction:
        return sum((a for n, a in self.coef.items() if n in on), Fraction(0))

    def holds(self, on: set[str]) -> bool:
        v = self.value(on)
        return v > self.r if self.strict else v >= self.r

    def slack(self, on: set[str]) -> Fraction:
        return self.value(on) - self.r


@dataclass
class ParsedDump:
    path: str
    format: str
    meta: dict
    text: str = field(repr=False)
    rows: list[Row] = field(default_factory=list)  # mask rows (smt2 first-layer/text: exact; lp: floats)
    exact: bool = True  # rows are exact rationals (False: LP/MPS floats)
    variables: list[str] = field(default_factory=list)  # mask variables the dump reads
    clauses: list[tuple[str, list[tuple[str, bool]]]] = field(default_factory=list)  # wcnf: (row, clause)
    statements: list[tuple[str, object]] = field(default_factory=list)  # network smt2: (name, pysmt formula)
    highs: object = None  # lp/mps: the highspy.Highs holding the model
    wcnf: object = None  # wcnf: the pysat WCNF as read

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "?")

    @property
    def network(self) -> bool:
        return self.kind == "whole-network"

    def block_of(self, name: str) -> tuple | None:
        v = self.meta.get("variables", {}).get(name)
        if v is None:
            return None
        return tuple(v["block"]) if "block" in v else ("word", v["word"])


# ---- the frame: header and end marker ----------------------------------------------
def read_dump(path: str | Path) -> ParsedDump:
    """Read and parse a dump written by ``smug dump``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DumpError(f"cannot read the dump {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DumpError(f"{path} is not a text file (not a smug dump)") from None
    lines = text.splitlines()
    meta = None
    for line in lines[:200]:
        head, _, rest = line.partition(" ")
        if head in COMMENTS.values() and rest.startswith(MARK + " {"):
            try:
                meta = json.loads(rest[len(MARK) + 1:])
            except json.JSONDecodeError:
                cut = " (the file ends inside it: truncated)" if line == lines[-1] else ""
                raise DumpError(f"{path}: the smug-dump header line is damaged{cut}") from None
            break
    if meta is None and any(l.partition(" ")[2].startswith(("kind: ", "smug_version: ")) for l in lines[:20]):
        raise DumpError(f"{path} is truncated: it ends at line {len(lines)}, before its smug-dump header line")
    if meta is None:
        what = ("an SMT-LIB2 file" if any(l.lstrip().startswith(("(set-logic", "(assert", "(declare"))
                                          for l in lines[:400]) else "a file")
        raise DumpError(f"{path} is {what} that smug did not write: no 'smug-dump' header line "
                        "(write one with smug dump)")
    fmt = meta.get("format")
    if fmt not in COMMENTS:
        raise DumpError(f"{path}: unknown dump format {fmt!r} in its header")
    _check_end(path, text, fmt, meta)
    dump = ParsedDump(str(path), fmt, meta, text)
    parse = {"smt2": _parse_smt2, "wcnf": _parse_wcnf, "lp": _parse_milp, "mps": _parse_milp}[fmt]
    try:
        parse(dump)
    except DumpError:
        raise
    except Exception as exc:  # a parser's own error on a damaged body
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DumpError(f"{path}: the {fmt} body does not parse: {msg}") from None
    return dump


def _check_end(path: Path, text: str, fmt: str, meta: dict) -> None:
    """The end line is there and (header version 2 on) its sha256 is that of everything before it."""
    lines = text.splitlines()
    last = next((l for l in reversed(lines) if l.strip()), "").strip()
    marker = f"{COMMENTS[fmt]} {MARK} end"
    if last != marker and not last.startswith(marker + " sha256:"):
        raise DumpError(f"{path} is truncated: it ends at line {len(lines)} without the 'smug-dump end' line")
    version = meta.get("dump_version", 1)
    if not isinstance(version, int) or version < 2:
        return  # an older smug's dump: nothing covers its header
    digest = last[len(marker + " sha256:"):] if last != marker else ""
    body = text[: text.rstrip().rfind("\n") + 1]
    if digest != hashlib.sha256(body.encode("utf-8")).hexdigest():
        raise DumpError(f"{path} was edited after smug wrote it: its end line's sha256 does not match its header "
                        "and constraints")


# ---- SMT-LIB2 (pysmt) --------------------------------------------------------------
def _q(value) -> Fraction:
    return Fraction(int(value.numerator), int(value.denominator))


def linear(f) -> tuple[dict[str, Fraction], Fraction]:
    """A pysmt term as ``sum coef[name] * name + const`` (mask ``ite``s read as ``a * m``)."""
    if f.is_constant():
        return {}, _q(f.constant_value())
    if f.is_symbol():
        return {f.symbol_name(): Fraction(1)}, Fraction(0)
    if f.is_plus() or f.is_minus():
        coef: dict[str, Fraction] = {}
        const = Fraction(0)
        for k, arg in enumerate(f.args()):
            sign = -1 if f.is_minus() and k > 0 else 1
            c, v = linear(arg)
            for n, a in c.items():
                coef[n] = coef.get(n, Fraction(0)) + sign * a
            const += sign * v
        return {n: a for n, a in coef.items() if a != 0}, const
    if f.is_times():
        scalar, lin = Fraction(1), None
        for arg in f.args():
            c, v = linear(arg)
            if c:
                if lin is not None:
                    raise DumpError("a product of two variables: not a linear row")
                lin = (c, v)
            else:
                scalar *= v
        if lin is None:
            return {}, scalar
        return {n: a * scalar for n, a in lin[0].items()}, lin[1] * scalar
    if f.is_div():
        c, v = linear(f.arg(0))
        dc, dv = linear(f.arg(1))
        if dc:
            raise DumpError("division by a variable: not a linear row")
        return {n: a / dv for n, a in c.items()}, v / dv
    if f.is_ite():
        cond, then, other = f.args()
        if not cond.is_symbol():
            raise DumpError("an ite on a formula: not a mask row")
        tc, tv = linear(then)
        ec, ev = linear(other)
        if tc or ec:
            raise DumpError("an ite over variables: not a mask row")
        name = cond.symbol_name()
        return ({name: tv - ev} if tv != ev else {}), ev
    raise DumpError(f"an unexpected term {f.node_type()} in a row")


def _row(name: str, f) -> Row:
    """``(> lhs rhs)`` (pysmt reads it as ``rhs < lhs``) or ``>=`` as a mask row."""
    if f.is_lt() or f.is_le():
        small, big = f.args()
        c1, v1 = linear(big)
        c0, v0 = linear(small)
        coef = dict(c1)
        for n, a in c0.items():
            coef[n] = coef.get(n, Fraction(0)) - a
        return Row(name, {n: a for n, a in coef.items() if a != 0}, v0 - v1, strict=f.is_lt())
    raise DumpError(f"row {name} is not an inequality")


def _assert_names(text: str) -> list[str]:
    names, prev = [], ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("(assert"):
            names.append(prev[1:].strip() if prev.startswith(";") else f"assert{len(names)}")
        if s:
            prev = s
    return names


def _parse_smt2(dump: ParsedDump) -> None:
    from pysmt.environment import Environment
    from pysmt.smtlib.parser import SmtLibParser

    body = "\n".join(l for l in dump.text.splitlines() if not l.lstrip().startswith(Z3_EXTENSION))
    parser = SmtLibParser(environment=Environment())
    script = parser.get_script(io.StringIO(body))
    names = _assert_names(body)
    asserts = [cmd.args[0] for cmd in script.commands if cmd.name == "assert"]
    if len(asserts) != len(names):
        raise DumpError(f"{dump.path}: {len(asserts)} assertions but {len(names)} assert lines")
    declared = [cmd.args[0].symbol_name() for cmd in script.commands
                if cmd.name == "declare-const" and cmd.args[0].symbol_type().is_bool_type()]
    dump.variables = declared
    statements = [(n, f) for n, f in zip(names, asserts) if not n.startswith("bound")]
    if dump.network:
        dump.statements = statements
        return
    dump.rows = [_row(n, f) for n, f in statements]


# ---- WCNF (python-sat) --------------------------------------------------------------
def _parse_wcnf(dump: ParsedDump) -> None:
    from pysat.formula import WCNF

    names: dict[int, str] = {}
    row_of: list[str] = []  # the row of every hard clause, in order
    current, top = None, None
    for line in dump.text.splitlines():
        if line.startswith("c var "):
            _, _, k, name = line.split(" ", 3)
            names[int(k)] = name
        elif line.startswith("c row "):
            current = line[len("c row "):].rsplit(" ", 1)[0]
        elif line.startswith("p wcnf "):
            top = line.split()[4]
        elif line and line[0].isdigit() and line.split(" ", 1)[0] == top:
            if current is None:
                raise DumpError(f"{dump.path}: a hard clause before any 'c row' comment")
            row_of.append(current)
    w = WCNF(from_string=dump.text)
    if len(w.hard) != len(row_of):
        raise DumpError(f"{dump.path}: {len(w.hard)} hard clauses but {len(row_of)} under row comments")
    for clause in w.hard + [c for c in w.soft]:
        for lit in clause:
            if abs(lit) not in names:
                raise DumpError(f"{dump.path}: variable {abs(lit)} has no 'c var' name")
    dump.variables = [names[k] for k in sorted(names)]
    dump.clauses = [(row, [(names[abs(l)], l > 0) for l in clause]) for row, clause in zip(row_of, w.hard)]
    dump.wcnf = w


# ---- LP / MPS (HiGHS) ---------------------------------------------------------------
def _parse_milp(dump: ParsedDump) -> None:
    import highspy
    import numpy as np

    from smug.common import quiet_highs

    h = quiet_highs()
    if h.readModel(dump.path) != highspy.HighsStatus.kOk:
        raise DumpError(f"{dump.path}: HiGHS cannot read this {dump.format} model")
    lp = h.getLp()
    dump.highs, dump.exact = h, False
    cols = list(lp.col_names_)
    masks = set(dump.meta.get("variables", {}))
    dump.variables = [c for c in cols if c in masks]
    if dump.network:
        return
    margin = float(dump.meta.get("margin", 0.0))
    a = lp.a_matrix_
    start, index, value = np.asarray(a.start_), np.asarray(a.index_), np.asarray(a.value_)
    n_rows = lp.num_row_
    coef: list[dict[str, Fraction]] = [dict() for _ in range(n_rows)]
    for j in range(lp.num_col_):  # HiGHS keeps the matrix column-wise after reading
        for t in range(start[j], start[j + 1]):
            coef[index[t]][cols[j]] = Fraction(float(value[t]))
    names = list(lp.row_names_) or [f"r{i}" for i in range(n_rows)]
    for i in range(n_rows):
        scale = max([1.0] + [abs(float(v)) for v in coef[i].values()])
        r = Fraction(float(lp.row_lower_[i])) - Fraction(margin * scale)
        dump.rows.append(Row(names[i], coef[i], r))
