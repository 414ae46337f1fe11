"""The ``farm`` subcommand of ``smug`` (argparse): :func:`add_commands` adds ``farm run|status|export``
to the CLI's subparsers, :func:`run_command` runs the parsed arguments.

    smug farm run jobs.jsonl --db results.sqlite [--workers N | --scheduler tcp://HOST:8786]
    smug farm run --images 'photos/*.jpg' --models efficientnet-lite0 --methods smug \\
        --grid top_k=1000,3000 gamma=0,0.5 --db results.sqlite
    smug farm status --db results.sqlite
    smug farm export --db results.sqlite --format jsonl|csv|parquet [--out FILE]
"""

from __future__ import annotations

import json
import sys

COMMANDS = ("farm",)
SHOWN = 20  # superseded rows named one by one before a count
MANIFEST_EXAMPLE = """\
a manifest (JSON Lines; a line is one request: input, text, model, method, name, timeout, ... and
the method's parameters; relative paths from the manifest's folder):
  {"input": "digits/seven.png", "model": "mnist-mlp", "top_k": 20, "window": 1, "name": "seven"}
  {"model": "mnist-mlp", "method": "whole-network", "delta": 0.5, "timeout": 30}
  {"model": "text-cnn", "text": "a gorgeous, funny film let down by a dull ending", "top_k": 20}
or a CSV file with these names as its header:
  input,model,method,top_k,timeout
  photos/cat.jpg,efficientnet-lite0,smug,3000,120"""


def add_commands(sub) -> None:
    """``smug farm`` with its ``run``, ``status`` and ``export`` subcommands."""
    farm = sub.add_parser("farm", help="many explanations on a Dask cluster (resumable): run, status, export")
    fs = farm.add_subparsers(dest="farm_command", required=True)
    run = fs.add_parser("run", help="run a manifest (JSONL or CSV) or a generated grid of jobs",
                        epilog=MANIFEST_EXAMPLE)
    run.add_argument("manifest", nargs="?", help="JSON Lines (one request per line) or .csv with a header")
    run.add_argument("--db", required=True, help="the SQLite store (a re-run skips finished jobs)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local process workers (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786", help="a running Dask scheduler")
    run.add_argument("--job-timeout", type=float, default=None, help="wall seconds per job from its start")
    run.add_argument("--retries", type=int, default=2, help="re-runs of a job that kills its worker (default 2)")
    run.add_argument("--memory-limit", default="auto", help="per local worker, e.g. 4GiB (default: RAM / workers)")
    run.add_argument("--dashboard", nargs="?", const=":8787", default=None, metavar="[HOST]:PORT",
                     help="serve Dask's dashboard of the local cluster (unauthenticated; default off; "
                          "bare --dashboard: 127.0.0.1:8787)")
    run.add_argument("--skip-invalid", action="store_true", help="run the valid lines of a manifest with bad ones")
    run.add_argument("--retry-failed", action="store_true", help="also re-run jobs the store has as failed")
    run.add_argument("--quiet", action="store_true", help="no progress bar (it is drawn on a terminal only)")
    gen = run.add_argument_group("a generated manifest (instead of MANIFEST)")
    gen.add_argument("--images", nargs="+", default=None, metavar="GLOB", help="image files or glob patterns")
    gen.add_argument("--models", default="efficientnet-lite0", help="comma-separated zoo names or .onnx paths")
    gen.add_argument("--methods", default="smug", help="comma-separated: smug, whole-network, baseline names")
    gen.add_argument("--grid", nargs="+", default=[], metavar="NAME=V1,V2",
                     help="parameter values to sweep, e.g. top_k=1000,3000 gamma=0,0.5")
    gen.add_argument("--timeout", type=float, default=None, help="solver seconds per job (default 60)")
    st = fs.add_parser("status", help="done / failed / pending counts and the failures' reasons")
    st.add_argument("--db", required=True)
    ex = fs.add_parser("export", help="the store's jobs as jsonl, csv or parquet (nothing recomputed)")
    ex.add_argument("--db", required=True)
    ex.add_argument("--format", default="jsonl", choices=("jsonl", "csv", "parquet"))
    ex.add_argument("--out", default=None, help="output file (default: stdout; parquet needs --out)")
    ex.add_argument("--state", default=None, choices=("done", "failed", "pending"), help="only jobs in this state")


def run_command(a) -> int:
    """Run a parsed ``farm`` command; bad arguments or manifests raise ValueError (the CLI prints them)."""
    return {"run": _run, "status": _status, "export": _export}[a.farm_command](a)


def _manifest(a):
    from smug.farm.manifest import grid_manifest, parse_grid, read_manifest

    if (a.manifest is None) == (a.images is None):
        raise ValueError("give a MANIFEST file or --images GLOB (a generated grid), not both")
    if a.manifest is not None:
        return read_manifest(a.manifest)
    common = {} if a.timeout is None else {"timeout": a.timeout}
    return grid_manifest(a.images, _split(a.models), _split(a.methods), parse_grid(a.grid), **common)


def _split(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise ValueError(f"empty list {text!r}")
    return items


def _run(a) -> int:
    from smug.farm.engine import run
    from smug.farm.progress import ProgressBar

    manifest = _manifest(a)
    for err in manifest.errors:
        print(f"smug farm: manifest {err}", file=sys.stderr)
    for line, first in manifest.duplicates:
        print(f"smug farm: manifest line {line} is the same job as line {first}; it runs once", file=sys.stderr)
    manifest.checked(a.skip_invalid)
    if a.scheduler is not None:
        from smug.farm.cluster import check_scheduler

        check_scheduler(a.scheduler)  # before the store is written
    _say_superseded(a.db, manifest.jobs)
    bar = None if a.quiet else ProgressBar()
    counts = {"done": 0, "failed": 0}
    try:
        for r in run(manifest.jobs, a.db, workers=a.workers, scheduler=a.scheduler, job_timeout=a.job_timeout,
                     retries=a.retries, memory_limit=a.memory_limit, retry_failed=a.retry_failed, progress=bar,
                     dashboard=a.dashboard):
            counts[r.state] += 1
    finally:
        if bar is not None:
            bar.close()
    print(json.dumps({"db": a.db, "jobs": len(manifest.jobs), "invalid": len(manifest.errors), **counts,
                      "skipped": len(manifest.jobs) - counts["done"] - counts["failed"]}))
    return 0


def _say_superseded(db: str, jobs) -> None:
    """Name the store's rows of an older id scheme that this run recomputes (they are kept)."""
    from pathlib import Path

    from smug.farm.store import Store

    if not Path(db).is_file():
        return
    with Store(db) as s:
        old = s.superseded(jobs)
    if old:
        print(f"smug farm: {len(old)} job(s) of this run were stored under an older id scheme (an older smug); "
              "this run recomputes them (the old rows stay readable and exportable):", file=sys.stderr)
    for row in old[:SHOWN]:
        where = f"line {row['line']}" if row["line"] is not None else "a job"
        print(f"smug farm:   {where}: {row['input']}, {row['model']}, {row['method']} (id scheme {row['id_scheme']}, "
              f"{row['state']})", file=sys.stderr)
    if len(old) > SHOWN:
        print(f"smug farm:   ... and {len(old) - SHOWN} more", file=sys.stderr)


def _status(a) -> int:
    from smug.farm.store import Store

    with Store(a.db, create=False) as s:
        print(json.dumps({"db": a.db, **s.counts(), "failures": s.failures()}, indent=2))
    return 0


def _export(a) -> int:
    from smug.farm.export import export
    from smug.farm.store import STATES, Store

    if a.format == "parquet" and a.out is None:
        raise ValueError("parquet export needs --out FILE")
    with Store(a.db, create=False) as s:
        data = export(s, a.format, a.out, (a.state,) if a.state else STATES)
    if a.out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        print(json.dumps({"out": a.out, "bytes": len(data)}))
    return 0
