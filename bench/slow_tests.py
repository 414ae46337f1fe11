"""The tests marked ``slow``, run apart from the default suite, with their outcome and seconds.

The default ``python -m pytest`` leaves out ``@pytest.mark.slow`` (EfficientNet-Lite0 end to end,
the big-M LP check, four runs of one photo through the farm and a server) so that the suite keeps
to its 15 minutes on 2 cores; this bench is what runs them, and its table in docs/benchmarks.md
says when they last passed and what each cost.

    nice -n 10 python -m smug.bench.slow_tests            # writes docs/benchmarks.md
    python -m smug.bench.slow_tests --no-doc -k lite0      # a part of them, printed only
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from smug.bench.common import add_doc_args, invocation, parser, publish, table, uptime

ROOT = Path(__file__).resolve().parents[1]
DURATION = re.compile(r"^\s*([0-9.]+)s (call|setup|teardown)\s+(\S+)")
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+(\S+)")


def run_slow(select: str | None) -> tuple[int, str]:
    """``pytest -m slow`` in a fresh interpreter from the project's root, in one process (``-n 0``:
    each test's seconds are its own, not shared with a second worker): (exit code, its output)."""
    command = [sys.executable, "-m", "pytest", "-m", "slow", "-n", "0", "-rA", "-q", "-p", "no:cacheprovider",
               "--durations=0", "--durations-min=0", "tests"]
    if select:
        command += ["-k", select]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def rows(output: str) -> list[tuple[str, str, float]]:
    """(test id, outcome, seconds of setup + call + teardown) for every test the run reported."""
    seconds: dict[str, float] = {}
    outcome: dict[str, str] = {}
    for line in output.splitlines():
        if m := DURATION.match(line):
            seconds[m[3]] = seconds.get(m[3], 0.0) + float(m[1])
        elif m := OUTCOME.match(line):
            outcome[m[2]] = m[1].lower()
    return [(test, outcome[test], seconds.get(test, 0.0)) for test in sorted(outcome)]


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, first_line=True)
    ap.add_argument("-k", dest="select", help="only the slow tests whose names match (pytest's -k)")
    add_doc_args(ap)
    args = ap.parse_args(argv)
    load_before = uptime()
    code, output = run_slow(args.select)
    found = rows(output)
    summary = output.strip().splitlines()[-1] if output.strip() else "no output"
    body = "\n".join([
        f"Load before: `{load_before}`; after: `{uptime()}`. pytest's summary: `{summary}`.", "",
        *table(["test", "outcome", "seconds"], [(f"`{t}`", o, f"{s:.1f}") for t, o, s in found]),
    ])
    publish(args, "slow_tests", "The slow tests (left out of the default run)",
            invocation("slow_tests", "nice -n 10 "), body)
    return 0 if code == 0 and found else 1


if __name__ == "__main__":
    raise SystemExit(main())
