"""Start-up cost: what the command line imports before it knows what it has to do.

Each check runs in a fresh interpreter (this test process has long imported everything) and
reads ``sys.modules`` after the step; the timing of whole processes is ``bench/startup.py``.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "onnx", "onnx2torch", "ml_dtypes", "onnxruntime", "dask", "distributed", "grpc", "scipy",
         "highspy", "z3", "matplotlib")


def imported_after(code: str) -> set[str]:
    """Top-level packages from HEAVY that a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.strip().splitlines()[-1])) & set(HEAVY)


@pytest.mark.parametrize("step", [
    "import smug",
    "import smug.clients.cli as cli\ncli._parser()",  # every subcommand's arguments, as `smug --help` builds them
    "from smug.clients.cli import run_command\nrun_command(['models'])",
])
def test_the_command_line_loads_no_model_or_cluster_library_before_it_needs_one(step):
    assert imported_after(step) == set()


def test_a_whole_explanation_with_its_pictures_needs_neither_torch_nor_matplotlib(tmp_path):
    """Issue 29: ``smug explain --model mnist-mlp`` (IG in numpy, every picture drawn with Pillow) imports
    neither; the files it writes are all there."""
    step = ("from smug.clients.cli import run_command\n"
            f"run_command(['explain', '--model', 'mnist-mlp', '--out', {str(tmp_path / 'out')!r}, '--quiet'])")
    assert not imported_after(step) & {"torch", "matplotlib"}
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"result.json", "figure.png", "overlay.png"}
