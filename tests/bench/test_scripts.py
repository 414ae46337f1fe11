"""Every benchmark runs as ``python -m smug.bench.NAME`` (parses ``--help``) without touching
``sys.path``; the training scripts parse theirs; the shared data splits and nets."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
TRAINING = Path(__file__).resolve().parents[2] / "training"
SCRIPTS = ["alignment", "baselines", "check", "compat", "farm", "hard_first_layer", "keep_class", "mnist_full", "robust",
           "service_load", "slow_tests", "smug_imagenet", "soundness", "startup", "table1", "text", "tie_break"]


def _help(cmd: list[str]) -> str:
    r = subprocess.run([sys.executable, *cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_script_parses_help(name):
    out = _help(["-m", f"smug.bench.{name}"])
    assert "--no-doc" in out and "--doc" in out


def test_bench_scripts_are_all_listed_and_leave_sys_path_alone():
    # gallery: pictures, no table; adversarial: networks for soundness; robust_marabou: VeriX in its own venv
    helpers = {"__init__", "common", "datasets", "nets", "hard_instances", "gallery", "adversarial", "robust_marabou"}
    assert sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in helpers) == SCRIPTS
    for path in BENCH.glob("*.py"):
        tree = ast.parse(path.read_text())
        calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
        assert "sys.path.insert" not in calls and "sys.path.append" not in calls, path.name
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, path.name


@pytest.mark.parametrize("script,required", [("train_mnist_mlp.py", ["--out"]), ("train_mnist_cnn.py", ["--out"]),
                                             ("train_text_cnn.py", ["--data", "--out"])])
def test_training_scripts_take_their_paths_as_arguments(script, required):
    out = _help([str(TRAINING / script)])
    assert all(flag in out for flag in required)
    r = subprocess.run([sys.executable, str(TRAINING / script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "required" in r.stderr  # no hard-coded default paths


def test_random_text_cnn_matches_its_torch_module():
    import torch

    from smug.bench.nets import random_text_cnn

    net, model = random_text_cnn(vocab=12, length=8, seed=4)
    ids = np.random.default_rng(0).integers(0, 12, size=(3, 8)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(model.logits(ids), ref, atol=1e-6)
    assert model.input_shape == (8,)


def test_snippets_split_from_a_file_or_its_folder(tmp_path):
    from smug.bench.datasets import SNIPPETS_FILE, read_snippets, snippets_split

    lines = [f"{i}\t{(i % 9) - 4:.1f}\tsnippet number {i}" for i in range(30)] + ["a broken line"]
    (tmp_path / SNIPPETS_FILE).write_text("\n".join(lines), encoding="utf-8")
    texts, y = read_snippets(tmp_path)
    assert len(texts) == 30 and y.min() == 0.0 and y.max() == 1.0
    split = snippets_split(tmp_path / SNIPPETS_FILE)
    assert [len(split[k][0]) for k in ("train", "validation", "test")] == [24, 3, 3]
    assert sorted(sum((split[k][0] for k in split), [])) == sorted(texts)
    with pytest.raises(FileNotFoundError, match="snippets not found"):
        read_snippets(tmp_path / "none")
