"""The command-line side of the dump tools: ``smug inspect`` and ``smug check`` (added to the
CLI's subparsers by :func:`add_commands`), and the ``smug dump`` options (:func:`dump_arguments`)."""

from __future__ import annotations

import argparse
import json
import sys

FORMATS = ("smt2", "wcnf", "lp", "mps")


def dump_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format``, ``--bound``, ``--method``, ``--delta``, ``--epsilon`` and ``--result`` for ``smug
    dump``; pass them to ``smug.pipeline.dump(request, format=a.format, bound=a.bound, result=a.result)``
    with the request built for ``a.method``."""
    parser.add_argument("--format", choices=FORMATS, default="smt2",
                        help="smt2 (exact; z3's minimize, or pure SMT-LIB2 with --bound), wcnf (MaxSAT; first "
                             "layer and text), lp / mps (the MILP, floats; every kind)")
    parser.add_argument("--bound", type=int, default=None, metavar="K",
                        help="smt2: assert (<= count K) instead of z3's minimize (pure SMT-LIB2)")
    parser.add_argument("--method", default="smug", choices=("smug", "whole-network", "robust"),
                        help="smug: the first-layer (or text) encoding; whole-network: Eq. 6; robust: the question "
                             "'is E robust?' (smt2 or lp)")
    parser.add_argument("--delta", type=float, default=None, help="whole network: logit margin to keep, >= 0")
    parser.add_argument("--epsilon", type=float, default=None, help="robust: L-inf radius (inf: the whole domain)")
    parser.add_argument("--result", default=None,
                        help="robust: the result.json whose E is asked about (default: no pixel fixed)")


def add_commands(sub) -> None:
    """``inspect`` and ``check`` subcommands."""
    ins = sub.add_parser("inspect", help="what a dump's constraints say (pysmt): components, forced blocks, "
                                         "cores, slacks, why a block is kept")
    ins.add_argument("dump", help="a file written by smug dump")
    ins.add_argument("--result", default=None, help="a result.json of the same request: slacks and why-this-block")
    ins.add_argument("--image", default=None, help="the input picture, for the overlays")
    ins.add_argument("--out", default=None, help="folder for report.json, pictures and index.html")
    chk = sub.add_parser("check", help="re-solve a dump with another engine and confirm a result's "
                                       "feasibility and minimality")
    chk.add_argument("dump", help="a file written by smug dump")
    chk.add_argument("result", help="the result.json to confirm")
    chk.add_argument("--timeout", type=float, default=600.0, help="seconds for the re-solve")
    chk.add_argument("--json", action="store_true", help="print the full report as JSON")


def run_command(a: argparse.Namespace) -> int:
    """Run ``inspect`` or ``check``: 0 when it holds; 1 when ``check`` rejects the result.  Unreadable or
    mismatched input raises :class:`~smug.debugging.reader.DumpError` (a ValueError: one line)."""
    if a.command == "inspect":
        from smug.debugging.inspect import inspect, summary

        report = inspect(a.dump, a.result, a.image, a.out)
        print(json.dumps(summary(report), indent=2))
        return 0
    if a.command == "check":
        from smug.debugging.check import check
        from smug.debugging.robust_check import check_files, is_robust_dump

        if is_robust_dump(a.dump):  # robust (issue 30): E proven robust by z3
            ok, message = check_files(a.dump, a.result, a.timeout)
            print(message, file=sys.stdout if ok else sys.stderr)
            return 0 if ok else 1

        report = check(a.dump, a.result, a.timeout)
        if a.json:
            print(json.dumps(report.to_json(), indent=2))
        print(report.message, file=sys.stdout if report.ok else sys.stderr)
        return 0 if report.ok else 1
    raise ValueError(f"not a debugging command: {a.command}")
