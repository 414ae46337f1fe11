"""Self-describing constraint dumps: one entry point for every problem kind and format.

A dump is the format's own text between two comment lines that :mod:`smug.debugging`
reads back: ``smug-dump {json}`` first (the header: kind, format, parameters, hashes,
the variable map; see :func:`smug.pipeline.dump`) and ``smug-dump end sha256:<hex>`` last,
so a truncated file is recognised.  The end line's sha256 covers every byte before it
(the readable header lines, the JSON header and the constraints), so a header edited to
name another input or model no longer matches (header version 2; version 1 dumps end
with ``smug-dump end`` alone).  Formats:

* ``smt2``: exact rationals (:mod:`smug.solver.smtlib`); z3's ``minimize`` or, with a
  bound, pure SMT-LIB2;
* ``wcnf``: first-layer and text problems, exact clauses (:mod:`smug.solver.wcnf`);
* ``lp`` / ``mps``: the MILP models, floats (:mod:`smug.solver.milp_dump`).
"""

from __future__ import annotations

import hashlib
import json

from smug.ir import MaskProblem, NetworkProblem

FORMATS = ("smt2", "wcnf", "lp", "mps")
COMMENT = {"smt2": ";", "wcnf": "c", "lp": "\\", "mps": "*"}
MARK = "smug-dump"
END = "smug-dump end"
VERSION = 2  # of the header's layout (2: the end line carries the sha256 of everything before it)


def header_lines(meta: dict) -> list[str]:
    """Readable lines and the JSON line of a header (``meta``: the facts of :func:`smug.pipeline.dump`)."""
    lines = [f"{k}: {meta[k]}" for k in ("kind", "format", "model", "model_sha256", "input", "input_sha256",
                                          "identity", "target", "smug_version") if k in meta]
    if "params" in meta:
        lines.append("parameters: " + ", ".join(f"{k} {v}" for k, v in meta["params"].items()))
    return lines + [f"{MARK} " + json.dumps({"dump_version": VERSION, **meta}, separators=(",", ":"))]


def write_dump(problem: MaskProblem | NetworkProblem, fmt: str, meta: dict, bound: int | None = None) -> str:
    """The problem in ``fmt`` with the header ``meta`` and the end marker."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown dump format {fmt!r}; use one of {', '.join(FORMATS)}")
    if bound is not None and (int(bound) != bound or bound < 0):
        raise ValueError(f"--bound must be an integer >= 0, got {bound}")
    if bound is not None and fmt != "smt2":
        raise ValueError("--bound applies to --format smt2 only")
    meta = {**meta, "format": fmt, "bound": bound}
    if fmt in ("lp", "mps"):
        from smug.solver.milp_dump import MARGIN

        meta["margin"] = MARGIN
    head = header_lines(meta)
    network = isinstance(problem, NetworkProblem)
    if fmt == "smt2":
        from smug.solver.smtlib import network_to_smtlib, to_smtlib

        body = (network_to_smtlib if network else to_smtlib)(problem, head, bound=bound)
    elif fmt == "wcnf":
        if network:
            raise ValueError("wcnf is written for first-layer and text problems; use smt2, lp or mps for a "
                             "whole network")
        from smug.solver.wcnf import to_wcnf

        body = to_wcnf(problem, head)
    else:
        from smug.solver.milp_dump import to_milp

        body = to_milp(problem, fmt, head)
    return body + end_line(fmt, body)


def end_line(fmt: str, body: str) -> str:
    """The last line of a dump whose text before it is ``body``: the end marker and ``body``'s sha256."""
    return f"{COMMENT[fmt]} {END} sha256:{hashlib.sha256(body.encode('utf-8')).hexdigest()}\n"
