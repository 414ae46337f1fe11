"""A whole-network solve under a real memory cap (RLIMIT_AS in the isolation runner's child):
enumeration batches sized to a budget stay within it; a stage that exceeds it anyway hands
over to HiGHS and the sizes it refuted stay proven."""

import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Callable

import numpy as np
import pytest
import scipy.sparse as sp

from smug.events import Improved
from smug.ir import DenseLayer, NetworkProblem
from smug.isolation.runner import solve_isolated
from smug.isolation.limits import free_heap_bytes, memory_limit
from smug.solver.certificate import certify_network
from smug.solver.network_solve import solve_network
from smug.solver.solve import Solution

WIDE = 8000  # first-layer units: a batch of the 1,770 two-variable masks needs 113 MB


def wide_problem(n_vars: int = 60) -> NetworkProblem:
    """The class is kept iff at least two variables are on (unit 0 = relu(sum v - 1.5), logit 4 * unit0
    against 1); each other unit switches on with its variable but has no weight to the logits: the
    enumeration cannot drop it (it is neither constant nor always off), so every mask pays for it."""
    rows = np.r_[np.zeros(n_vars, np.int64), 1 + np.arange(WIDE - 1)]
    cols = np.r_[np.arange(n_vars), np.arange(WIDE - 1) % n_vars]
    vals = np.r_[np.ones(n_vars), np.full(WIDE - 1, 1e-3)]
    W1 = sp.csr_matrix((vals, (rows, cols)), shape=(WIDE, n_vars))
    b1 = np.r_[-1.5, np.full(WIDE - 1, -1e-4)]
    W2 = sp.csr_matrix(np.vstack([np.r_[4.0, np.zeros(WIDE - 1)], np.zeros(WIDE)]))
    layers = (DenseLayer(W1, b1, True), DenseLayer(W2, np.array([0.0, 1.0]), False))
    return NetworkProblem(layers, np.ones(n_vars), np.zeros(n_vars), np.arange(n_vars),
                          tuple(f"m{j}" for j in range(n_vars)), 0, 0.0)


@pytest.fixture(scope="module", autouse=True)
def highs_loaded():
    import highspy  # noqa: F401  mapped before the children fork, so the cap measures the solve only


def test_budgeted_enumeration_fits_under_the_cap():
    p = wide_problem()
    sol = solve_isolated(p, "auto", 30.0, memory_mb=80, solver=partial(solve_network, enum_memory_mb=20))
    assert sol.status == "optimal" and sol.objective == 2 == sol.lower_bound, sol.proof
    assert sol.stats["fallbacks"] == [] and certify_network(p, sol.mask).valid


def in_fresh_process(fn: Callable, *args):
    """``fn(*args)`` in a spawned interpreter: its heap holds none of the free blocks this test
    process gathered, which a forked solve child could otherwise reuse (the cap counts them)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _enumerate_beyond_the_cap(p: NetworkProblem):
    return solve_isolated(p, "auto", 30.0, memory_mb=80, solver=partial(solve_network, enum_memory_mb=100_000))


def test_enumeration_out_of_memory_falls_back_and_keeps_its_lower_bound():
    p = wide_problem()
    sol = in_fresh_process(_enumerate_beyond_the_cap, p)
    fallbacks = sol.stats["fallbacks"]
    assert [f["stage"] for f in fallbacks] == ["enum"] and "memory" in fallbacks[0]["reason"]
    assert fallbacks[0]["lower_bound"] == 2  # sizes 0 and 1 refuted before the batch of size 2 died
    # HiGHS takes over; its size-2 mask meets the refuted sizes: proven optimal, the bound kept
    assert sol.status == "optimal" and sol.objective == 2 == sol.lower_bound, sol.proof
    assert certify_network(p, sol.mask).valid and sol.stats["sizes_refuted_by_bounds"] >= 1


def _two_arrays(problem, backend, timeout, progress):
    first = np.ones(250 * 2**20 // 8)  # fits in the parent's free heap: reused, nothing mapped
    second = np.ones(200 * 2**20 // 8)  # mapped afresh
    raise SystemExit(f"touched {first.nbytes + second.nbytes} bytes: the cap did not hold")


def _free_300_mb_then_solve(p: NetworkProblem) -> tuple[int, Solution]:
    junk = [np.ones(1024) for _ in range(300 * 128)]  # 300 MB of heap blocks, then one kept above them
    top = np.ones(1024)
    del junk
    free = free_heap_bytes()
    return free, solve_isolated(p, "auto", 10.0, memory_mb=250, solver=_two_arrays) if top.any() else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallinfo2")
def test_the_cap_counts_the_parents_free_heap():
    free, sol = in_fresh_process(_free_300_mb_then_solve, wide_problem())
    assert free >= 300 * 2**20
    # 450 MB touched in all: under RLIMIT_AS alone the first array comes for free from the parent's free
    # heap and the second fits 250 MB; counting the free heap, nothing new may be mapped
    assert "memory" in sol.proof, sol.proof


def _free_heap_growth() -> int:
    before = free_heap_bytes()
    blocks = [np.ones(1024) for _ in range(64 * 128)]
    top = np.ones(1024)
    del blocks
    return free_heap_bytes() - before if top.any() else 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallinfo2")
def test_free_heap_bytes_sees_what_this_process_freed():
    assert in_fresh_process(_free_heap_growth) >= 60 * 2**20


def test_memory_limit_subtracts_the_reusable_heap():
    assert memory_limit(10, 100, 30) == 80 and memory_limit(10, 100, 300) == 10 and memory_limit(10, 100, 0) == 110


def _abort(problem, backend, timeout, progress):
    import os

    import time

    progress(Improved(60, 2, 0.0, np.ones(60, bool)))
    time.sleep(0.5)  # the queue's feeder thread sends it (a real solver reports long before it dies)
    os.abort()


def _sigkill(problem, backend, timeout, progress):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("solver, words", [(_abort, "signal 6"), (_sigkill, "signal 9")])
def test_a_dead_solve_says_why_and_keeps_what_it_proved(solver, words):
    sol = solve_isolated(wide_problem(), "auto", 10.0, grace=0.5, solver=solver)
    assert words in sol.proof
    if solver is _abort:  # its reported mask and lower bound survive the crash, re-certified
        assert sol.status == "feasible" and sol.lower_bound == 2 and sol.objective == 60
