"""The executable's end (issue 29): the process ends without the interpreter's module teardown, yet
with every exit duty done and the exit status ``SystemExit`` would give."""

from __future__ import annotations

import subprocess
import sys

import pytest


def ended(tmp_path, code: str) -> subprocess.CompletedProcess:
    """A fresh interpreter that registers exit work, then calls ``end_process(<code>)``."""
    script = f"""
import atexit, threading, time
from pathlib import Path
from smug.command import end_process
out = Path({str(tmp_path)!r})
atexit.register(lambda: (out / "atexit").write_text("ran"))
def late():
    time.sleep(0.3)
    (out / "thread").write_text("joined")
threading.Thread(target=late).start()
print("buffered", end="")
end_process({code})
raise SystemExit("not reached")
"""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("code, status", [("None", 0), ("0", 0), ("3", 3), ("'smug: error: words'", 1)])
def test_end_process_does_the_exit_work_and_keeps_the_status(tmp_path, code, status):
    done = ended(tmp_path, code)
    assert done.returncode == status, done.stderr
    assert done.stdout == "buffered"  # flushed
    assert (tmp_path / "atexit").read_text() == "ran" and (tmp_path / "thread").read_text() == "joined"
    assert ("smug: error: words" in done.stderr) == (status == 1) and "not reached" not in done.stderr


def test_the_executable_returns_the_commands_status():
    bad = subprocess.run([sys.executable, "-m", "smug", "explain", "--model", "no-such-model"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("smug: error: unknown model 'no-such-model'")
    from smug.command import main

    with pytest.raises(SystemExit) as raised:  # called with arguments it raises as usual
        main(["explain", "--model", "no-such-model"])
    assert raised.value.code == 2


def test_the_executable_runs_openblas_on_one_thread_unless_told_otherwise(tmp_path):
    import json
    import os

    probe = ("import json, os, sys; from smug.command import main; "
             "sys.argv = ['smug', 'models']; "
             "import smug.clients.cli as cli; real = cli.main; "
             "cli.main = lambda args: (print(json.dumps(os.environ.get('OPENBLAS_NUM_THREADS'))), real(args)); "
             "main()")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    mine = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**env, "OPENBLAS_NUM_THREADS": "4"})
    assert plain.returncode == 0 and mine.returncode == 0, plain.stderr + mine.stderr
    assert json.loads(plain.stdout.splitlines()[0]) == "1" and json.loads(mine.stdout.splitlines()[0]) == "4"
