"""Issue 29: a successful run says nothing it need not.  One fresh interpreter runs, as a user would, a
first-layer, a whole-network and a baseline explanation, a farm batch of three jobs on an embedded
LocalCluster and a request to a server (started in that process with ``smug serve``'s logging, into
a file); its standard error then holds no solver banner, no library warning and no Dask
shutdown message (only smug's own ``smug: warning:`` lines), its standard output only the commands'
JSON, and the server's log only smug's own JSON lines (no wrapped warning or library record either)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytest.importorskip("distributed")
pytest.importorskip("grpc")

SCRIPT = r"""
import json, sys
from pathlib import Path
from smug.clients.cli import run_command
from smug.server.config import ServerConfig
from smug.server.logs import configure
from smug.server.main import start

here = Path(sys.argv[1])
explain = ["explain", "--model", "mnist-mlp"]
run_command([*explain, "--out", str(here / "first")])
whole = ["--method", "whole-network", "--window", "7"]  # small questions (whole-network jobs load no torch)
run_command([*explain, *whole, "--out", str(here / "whole")])
run_command([*explain, "--method", "gradient", "--out", str(here / "baseline")])
jobs = [{"model": "mnist-mlp", "method": "whole-network", "window": 7, "delta": d} for d in (0.0, 0.5, 1.0)]
(here / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n" for j in jobs))
run_command(["farm", "run", str(here / "jobs.jsonl"), "--db", str(here / "farm.sqlite"), "--workers", "1"])
# the server last: the local runs fork solve hosts, which gRPC (running in this process) would remark on
log = open(here / "server.log", "w")
configure(log)  # as `smug serve` does
server = start(ServerConfig(port=0, workers=1, store=here / "models", inspect_zoo=False))
try:
    run_command([*explain, *whole, "--server", f"127.0.0.1:{server.port}", "--out", str(here / "remote")])
finally:
    server.stop(grace=1)
    log.close()
"""


def test_a_run_of_every_kind_says_only_what_smug_means_to_say(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    noise = [line for line in r.stderr.splitlines() if not line.startswith("smug: warning: ")]
    assert not noise, "\n".join(noise)
    answers = [json.loads(block) for block in re.split(r"\n(?=\{)", r.stdout.strip())]  # pretty or one-line JSON
    assert [a.get("method") for a in answers] == ["smug", "whole-network", "gradient", None, "whole-network"]
    assert answers[3]["done"] == 3 and answers[3]["failed"] == 0  # the farm's summary
    log = (tmp_path / "server.log").read_text().splitlines()
    entries = [json.loads(line) for line in log]  # every line a JSON object
    assert any(e.get("rpc") == "ExplainStream" and e.get("code") == "OK" for e in entries), log
    assert not [e for e in entries if e.get("event") == "log"]  # no library's warning (this process's, Dask's) either
