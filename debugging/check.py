"""``smug check DUMP RESULT``: re-solve a dump with another engine and confirm a result.

Feasibility: every row at the result's mask, exactly where the dump is exact (smt2: rationals,
wcnf: clauses; lp/mps: floats).  Minimality: per independent component, RC2 on clauses
(compiled here from the exact rows, or the WCNF's own), z3 for components with wide rows or a
whole network (``AtMost(k - 1)`` must be unsatisfiable), HiGHS for LP/MPS (floats, not a proof).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from smug.debugging.reader import DumpError, ParsedDump, read_dump
from smug.debugging import solve


@dataclass
class CheckReport:
    ok: bool
    message: str
    size: int
    optimum: int | None
    components: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    engine: str = ""

    def to_json(self) -> dict:
        return {"ok": self.ok, "message": self.message, "size": self.size, "optimum": self.optimum,
                "seconds": round(self.seconds, 3), "engine": self.engine,
                "components": [{k: (sorted(v) if isinstance(v, set) else v) for k, v in c.items()}
                               for c in self.components]}


def load_result(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise DumpError(f"cannot read the result {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DumpError(f"{path} is not a result.json (not valid JSON)") from None
    if isinstance(data, list):
        if len(data) != 1:
            raise DumpError(f"{path} holds {len(data)} explanations; pass a result.json with one")
        data = data[0]
    if not isinstance(data, dict) or "status" not in data or "model" not in data:
        raise DumpError(f"{path} is not a smug result.json (no status or model)")
    return data


def mask_of(dump: ParsedDump, result: dict) -> set[str]:
    """The result's kept variables by the dump's names; refuses a result of another problem."""
    meta = dump.meta
    method = "whole-network" if dump.network else "smug"

    def differ(what: str, theirs, ours) -> DumpError:
        return DumpError(f"the result does not belong to this dump: its {what} is {theirs!r}, the dump's {ours!r}")

    for what, theirs, ours in (("model", result.get("model"), meta.get("model")),
                               ("method", result.get("method"), method),
                               ("target", result.get("target"), meta.get("target")),
                               ("number of mask variables", result.get("n_vars"), meta.get("n_vars"))):
        if theirs != ours:
            raise differ(what, theirs, ours)
    for key, what in (("input_sha256", "input"), ("model_sha256", "model file")):
        if meta.get(key) and not result.get(key):
            raise DumpError(f"the result does not say which {what} it answers (no {key}: an older smug wrote it); "
                            "explain again")
        if meta.get(key) and result[key] != meta[key]:
            raise DumpError(f"the result does not belong to this dump: it answers another {what} "
                            f"({key} {result[key][:12]}..., the dump's {meta[key][:12]}...)")
    config = result.get("constraints", result.get("config", {}))  # keep-class: the returned step's (top_k, gamma)
    params = meta.get("params", {})
    for p in sorted(set(config) & set(params)):  # every parameter both name (the request's config fields)
        if config[p] != params[p]:
            raise differ(p, config[p], params[p])
    if result.get("status") not in ("optimal", "feasible"):
        raise DumpError(f"the result has no mask to check (status {result.get('status')!r})")
    variables = meta.get("variables", {})
    if dump.kind == "text":
        rows = [r for r in (result.get("text") or {}).get("rows", []) if r.get("method") == "smug"]
        if not rows or rows[0].get("selected") is None:
            raise DumpError("the result has no SMUG word mask")
        by_word = {v["word"]: n for n, v in variables.items()}
        if len(rows[0]["selected"]) != len(by_word):
            raise differ("number of words", len(rows[0]["selected"]), len(by_word))
        return {by_word[j] for j, s in enumerate(rows[0]["selected"]) if s}
    by_block = {tuple(v["block"]): n for n, v in variables.items()}
    out = set()
    for block in result.get("mask_blocks") or []:
        if tuple(block) not in by_block:
            raise differ("block", block, "grid of the dump")
        out.add(by_block[tuple(block)])
    return out


def _failing(dump: ParsedDump, on: set[str]) -> str | None:
    if dump.network:
        if dump.format == "smt2":
            name, _ = solve.network_run(dump, on)
            return None if name is None else f"fails row {name}"
        feasible, _, _ = solve.highs_minimum(dump, fixed=on)
        return None if feasible else "fails: the MILP with the mask fixed is infeasible (HiGHS)"
    if dump.format == "wcnf":
        for row, clause in dump.clauses:
            if not any((n in on) == v for n, v in clause):
                return f"fails row {row}: clause {' '.join(('' if v else '-') + n for n, v in clause)} is false"
        return None
    for row in dump.rows:
        if not row.holds(on):
            kind = "exactly" if dump.exact else "in floats"
            return (f"fails row {row.name}: {float(row.value(on))!r} > {float(row.r)!r} is false {kind} "
                    f"(slack {float(row.slack(on)):.6g})")
    return None


def check(dump_path: str | Path, result_path: str | Path, timeout: float = 600.0) -> CheckReport:
    """Confirm that the result's mask satisfies the dump and that no smaller mask does."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    dump = read_dump(dump_path)
    on = mask_of(dump, load_result(result_path))
    size = len(on)
    fail = _failing(dump, on)
    if fail:
        return CheckReport(False, fail, size, None, seconds=time.perf_counter() - t0)
    if dump.network or dump.format in ("lp", "mps"):
        return _whole(dump, on, deadline, t0)
    comps, optimum, smaller = [], 0, set()
    parts = solve.components(dump)
    unread = sorted(on - {n for c in parts for n in c.variables})
    for comp in parts:
        kept = len(on & set(comp.variables))
        found = solve.component_minimum(dump, comp, kept, deadline)
        comps.append({"variables": len(comp.variables), "rows": len(comp.rows), "kept": kept,
                      "optimum": found["optimum"], "engine": found["engine"], "seconds": round(found["seconds"], 3)})
        if found["optimum"] is None:
            return CheckReport(False, f"no mask satisfies a component of {len(comp.variables)} variables, yet the "
                               "result claims one", size, None, comps, time.perf_counter() - t0)
        optimum += found["optimum"]
        smaller |= found["smaller"] if found["smaller"] is not None else on & set(comp.variables)
    seconds = time.perf_counter() - t0
    engines = ", ".join(sorted({c["engine"] for c in comps}))
    if optimum < size:
        drop = f"; it keeps variables no row reads: {', '.join(unread[:10])}" if unread else ""
        return CheckReport(False, f"a smaller mask exists: {optimum} instead of {size} "
                           f"({', '.join(sorted(smaller)[:20])}{' ...' if len(smaller) > 20 else ''}){drop}",
                           size, optimum, comps, seconds, engines)
    return CheckReport(True, f"ok: the mask of {size} holds every row {'exactly' if dump.exact else 'in floats'} "
                       f"and is minimal ({len(comps)} components, {engines}, {seconds:.2f} s)",
                       size, optimum, comps, seconds, engines)


def _whole(dump: ParsedDump, on: set[str], deadline: float, t0: float) -> CheckReport:
    size = len(on)
    if dump.format == "smt2":
        engine = "every smaller mask run in float64, close calls exactly"
        answer, mask = solve.network_enum_smaller(dump, size - 1, deadline) if size else ("unsat", None)
        if answer == "unknown":
            engine = "z3 (the dump's text, at most k-1)"
            answer, mask = solve.network_smaller(dump, size - 1, deadline)
        if answer == "unknown":
            raise DumpError("z3 did not decide minimality before the deadline")
        if answer == "sat":
            fail, _ = solve.network_run(dump, mask)
            note = "" if fail is None else f" (but it fails {fail} exactly: z3 and the exact run disagree)"
            return CheckReport(False, f"a smaller mask exists: {len(mask)} instead of {size} "
                               f"({', '.join(sorted(mask))}){note}", size, len(mask), [], time.perf_counter() - t0,
                               engine)
    else:
        engine = "HiGHS (floats, not a proof)"
        feasible, mask, _ = solve.highs_minimum(dump, at_most=size - 1) if size else (False, set(), 0)
        if feasible:
            return CheckReport(False, f"a smaller mask exists: {len(mask)} instead of {size} "
                               f"({', '.join(sorted(mask)[:20])}) per HiGHS in floats", size, len(mask), [],
                               time.perf_counter() - t0, engine)
    seconds = time.perf_counter() - t0
    return CheckReport(True, f"ok: the mask of {size} holds every row{' exactly' if dump.exact else ''} and no "
                       f"mask of {size - 1} exists ({engine}, {seconds:.2f} s)", size, size, [], seconds, engine)
