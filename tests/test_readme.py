"""The README's commands and Python examples that need no outside file run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
PLACEHOLDERS = ("photo.jpg", "img.png", "IMAGES", "reviews.txt", "../shared", "HOST", "localhost", "$SECRET",
                "path/to", "my.onnx", "eval.sqlite")
BUNDLED = ("--model mnist-mlp", "--model mnist-cnn", "--model text-cnn")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    """``smug ...`` lines on a bundled model (or ``smug models``), without their comments."""
    out = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if not line.startswith("smug ") or any(p in line for p in PLACEHOLDERS):
                continue
            if line == "smug models" or any(b in line for b in BUNDLED):
                out.append(re.sub(r"\s*\[.*?\]", "", line))  # optional arguments shown in brackets
    return out


COMMANDS = _commands()


def test_the_readme_has_commands_to_run():
    assert len(COMMANDS) >= 4 and any("--method whole-network" in c for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, tmp_path):
    r = subprocess.run([sys.executable, "-m", "smug", *shlex.split(command)[1:]], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr


def test_readme_python_examples_on_bundled_models_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ran = 0
    for block in _blocks("python"):
        if "Client(" in block or "photo.jpg" in block.split("#")[0] and "mnist-mlp" not in block:
            continue
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
        ran += 1
        if "e" in namespace:
            assert namespace["e"].certificate["valid"] and namespace["e"].status == "optimal"
    assert ran >= 2
    printed = capsys.readouterr().out.splitlines()  # progress=print: each event one short line, no arrays
    assert printed and max(len(line) for line in printed) <= 120, max(printed, key=len)[:300]


def test_the_readme_s_manifest_lines_are_the_help_s_checked_examples():
    from smug.farm.commands import MANIFEST_EXAMPLE  # checked as a manifest in tests/farm/test_commands.py

    lines = [line for block in _blocks("jsonl") for line in block.splitlines() if line.strip()]
    assert lines and all(f"  {line}\n" in MANIFEST_EXAMPLE + "\n" for line in lines)
