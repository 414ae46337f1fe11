"""Start-up of the command line: whole ``smug`` processes, this checkout beside an earlier commit.

Each command runs as a fresh process (a cold start: the interpreter, every import, the model's
set-up; the disk caches are warm: one unmeasured run of each command first), the two trees in
turn, ``--repeats`` times each.  Reported per command and tree: the median wall seconds and the
median CPU seconds (user + system of the process and every child it reaped: solve hosts, Dask
workers), and for explanations the answer's own split (``startup``: interpreter and imports before
the first stage; ``load``: the model; ``write``: the files).  The earlier commit is checked out
with ``git worktree`` into a temporary folder and imported from there (``PYTHONPATH``); the
machine's load is printed before and after, since other work on the machine inflates wall time
far more than CPU time.

    python -m smug.bench.startup --baseline HEAD~5 [--repeats 3] [--lite0]
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from smug.bench.common import ROOT, add_doc_args, parser, publish, table, uptime

COMMANDS = {  # name: arguments of `smug`
    "smug models": ["models"],
    "smug explain --model mnist-mlp": ["explain", "--model", "mnist-mlp"],
    "smug explain --model mnist-mlp --method gradient": ["explain", "--model", "mnist-mlp", "--method", "gradient"],
}
LITE0 = {"smug explain (Lite0, the bundled photo)": ["explain"],
         # the condition for Lite0: IG at its default passes, not doubled while completeness is over 5%
         "smug explain --ig-steps 32 (Lite0)": ["explain", "--ig-steps", "32"]}
SPLIT = ("startup", "load", "ig", "solve", "write")  # an explanation's own timings shown beside the process's


@dataclass(frozen=True)
class Run:
    """One process: wall and CPU seconds, and an explanation's timings (empty for other commands)."""

    wall: float
    cpu: float
    timings: dict


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A folder whose ``smug`` is commit ``rev`` (a detached worktree; removed afterwards): put it on ``PYTHONPATH``."""
    with tempfile.TemporaryDirectory(prefix="smug-startup-") as tmp:
        tree = Path(tmp) / "tree"
        git("worktree", "add", "--detach", str(tree), rev)
        try:
            (Path(tmp) / "path").mkdir()
            (Path(tmp) / "path" / "smug").symlink_to(tree)
            yield Path(tmp) / "path"
        finally:
            git("worktree", "remove", "--force", str(tree))


def measure(args: list[str], path: Path | None, out: Path) -> Run:
    """Run ``smug ARGS`` in a fresh interpreter (``path`` first on its import path, if given)."""
    env = {**os.environ, **({"PYTHONPATH": str(path)} if path else {})}
    extra = ["--out", str(out)] if args[0] == "explain" else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "smug", *args, *extra], capture_output=True, text=True, env=env,
                       cwd=out.parent, timeout=900)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in (0, 1):  # 1: an answer without a proven mask, still a whole run
        raise SystemExit(f"smug {' '.join(args)} failed:\n{r.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timings = json.loads(r.stdout).get("timings_s", {}) if args[0] == "explain" else {}
    return Run(wall, cpu, timings)


def median_row(name: str, tree: str, runs: list[Run]) -> list[str]:
    split = [statistics.median(r.timings[k] for r in runs) if all(k in r.timings for r in runs) else None
             for k in SPLIT]
    return [f"`{name}`", tree, f"{statistics.median(r.wall for r in runs):.2f}",
            f"{statistics.median(r.cpu for r in runs):.2f}", *("-" if s is None else f"{s:.2f}" for s in split)]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--baseline", default="HEAD~1", help="the earlier commit to compare with (default: HEAD~1)")
    ap.add_argument("--repeats", type=int, default=3, help="measured runs per command and tree")
    ap.add_argument("--lite0", action="store_true", help="also the Lite0 explanation of the bundled photo (slow)")
    add_doc_args(ap)
    a = ap.parse_args()
    commands = {**COMMANDS, **(LITE0 if a.lite0 else {})}
    here, base = git("rev-parse", "--short", "HEAD"), git("rev-parse", "--short", a.baseline)
    load_before = uptime()
    runs: dict[tuple[str, str], list[Run]] = {}
    with checkout(a.baseline) as old, tempfile.TemporaryDirectory(prefix="smug-startup-out-") as tmp:
        trees = {f"{base} (before)": old, f"{here} (now)": None}
        for name, args in commands.items():
            for tree, path in trees.items():  # warm the disk caches (and a model's derived files) first
                measure(args, path, Path(tmp) / "warm")
            for i in range(a.repeats):
                for tree, path in trees.items():
                    runs.setdefault((name, tree), []).append(measure(args, path, Path(tmp) / f"run{i}"))
                    print(f"{name} [{tree}]: {runs[name, tree][-1]}", file=sys.stderr)
    rows = [median_row(name, tree, runs[name, tree]) for name in commands for tree in trees]
    body = "\n".join([
        f"Whole `smug` processes, fresh interpreters with warm disk caches, medians of {a.repeats} runs per row; "
        f"the two commits alternate.  CPU: user + system of the process and its children.  The last five "
        f"columns are the explanation's own timings (`startup`: interpreter and imports before the first stage).",
        "", *table(["command", "commit", "wall s", "CPU s", *(f"{k} s" for k in SPLIT)], rows), "",
        f"Load before: `{load_before}`  ", f"Load after: `{uptime()}`"])
    publish(a, "startup", "Start-up of the command line", f"python -m smug.bench.startup --baseline {base} "
            f"--repeats {a.repeats}{' --lite0' if a.lite0 else ''}", body)


if __name__ == "__main__":
    main()
