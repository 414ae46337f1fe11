"""smug.evaluation.commands: the ``evaluate`` and ``report`` subcommands, on their own parser and
through the ``smug`` CLI (MNIST MLP)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from smug.evaluation.commands import add_commands, run_command


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="smug")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_commands_on_their_own_parser(tmp_path, digits, capsys):
    db, out = tmp_path / "e.sqlite", tmp_path / "r.html"
    a = _parse(["evaluate", str(digits[0]), "--model", "mnist-mlp", "--methods", "centerbox,maxbox",
                "--db", str(db), "--thresholds", "10", "--quiet"])
    assert a.top_k is None and a.window is None and not a.stopping  # unset: EvalConfig's (the pipeline's) defaults
    assert run_command(a) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == 1
    assert run_command(_parse(["report", "--db", str(db), "--out", str(out), "--methods", "maxbox"])) == 0
    assert json.loads(capsys.readouterr().out) == {"out": str(out)}
    assert "MAXBOX" in out.read_text() and "CENTERBOX" not in out.read_text()
    with pytest.raises(ValueError, match="--thresholds >= 2"):
        run_command(_parse(["evaluate", str(digits[0]), "--thresholds", "1", "--db", str(tmp_path / "n.sqlite")]))
    with pytest.raises(ValueError, match=r"gamma must lie in \[0, 1\), got 1.5"):  # the request's own words
        run_command(_parse(["evaluate", str(digits[0]), "--gamma", "1.5", "--db", str(tmp_path / "n.sqlite")]))
    with pytest.raises(ValueError, match="timeout must be positive"):
        run_command(_parse(["evaluate", str(digits[0]), "--timeout", "0", "--db", str(tmp_path / "n.sqlite")]))
    with pytest.raises(ValueError, match="image not found"):
        run_command(_parse(["evaluate", str(tmp_path / "missing.png"), "--db", str(tmp_path / "n.sqlite")]))
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        run_command(_parse(["evaluate", str(digits[0]), "--workers", "0", "--db", str(tmp_path / "n.sqlite")]))
    with pytest.raises(ValueError, match="not both"):
        run_command(_parse(["evaluate", str(digits[0]), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1",
                            "--db", str(tmp_path / "n.sqlite")]))
    for address in ("not-an-address", "tcp://127.0.0.1:1"):  # checked before the store is written
        with pytest.raises(ValueError, match="scheduler"):
            run_command(_parse(["evaluate", str(digits[0]), "--scheduler", address,
                                "--db", str(tmp_path / "n.sqlite")]))
    assert not (tmp_path / "n.sqlite").exists()


def test_cli_evaluate_then_report(tmp_path, digits):
    db, out = tmp_path / "e.sqlite", tmp_path / "r.html"
    cmd = [sys.executable, "-m", "smug.clients"]
    r = subprocess.run(cmd + ["evaluate", str(digits[0]), "--model", "mnist-mlp", "--methods", "ig,centerbox",
                              "--db", str(db)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["computed"] == 1 and "1/1" in r.stderr  # the progress bar
    r = subprocess.run(cmd + ["report", "--db", str(db), "--out", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "<table" in out.read_text()
    r = subprocess.run(cmd + ["evaluate", str(digits[0]), "--model", "mnist-mlp", "--methods", "bogus", "--db",
                              str(tmp_path / "n.sqlite")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("smug: error: unknown method")
    assert not (tmp_path / "n.sqlite").exists()
