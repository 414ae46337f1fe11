"""Issue 29: HiGHS prints its banner on the process's standard output at its first construction;
every solver path builds it through ``quiet_highs``, so nothing reaches stdout (a JSON-lines log,
a notebook cell)."""

import subprocess
import sys

CODE = """
from smug.common import quiet_highs
from smug.solver.network_milp import solve_network_milp
from smug.solver.network_bounds import crown_bounds
from smug.bench.adversarial import adversarial_network
p = adversarial_network(3, 6)
quiet_highs().run()
solve_network_milp(p, crown_bounds(p), 5.0)
"""


def test_no_solver_banner_on_stdout():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HiGHS" not in out.stdout + out.stderr
