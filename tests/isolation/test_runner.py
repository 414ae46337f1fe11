"""The isolation runner: a solve that overruns, crashes or blows up still answers, in time."""

from __future__ import annotations

import time

import numpy as np

from smug.bench.hard_instances import hard_first_layer
from smug.events import Improved
from smug.isolation.runner import solve_isolated
from smug.solver.certificate import certify
from smug.solver.network_solve import solve_network
from smug.solver.solve import solve

from _reference import random_network, reference_minimum

PROBLEM = hard_first_layer(size=48, k=200)


def _stuck(problem, backend, timeout, progress):
    """Reports like solve(), then ignores its timeout (as a z3 check sometimes does)."""
    solve(problem, backend=backend, timeout=30, progress=progress)
    time.sleep(60)


def _crash(problem, backend, timeout, progress):
    raise RuntimeError("boom")


def _silent(problem, backend, timeout, progress):
    time.sleep(60)


def _hog(problem, backend, timeout, progress):
    blocks = [np.ones(2**27) for _ in range(64)]  # 64 GiB: far past the cap
    return blocks


def test_an_overrunning_solver_answers_with_its_best_reported_mask():
    reference = solve(PROBLEM, timeout=30)
    events: list = []
    t0 = time.perf_counter()
    sol = solve_isolated(PROBLEM, "auto", 1.0, events.append, grace=0.5, solver=_stuck)
    assert time.perf_counter() - t0 < 5
    improved = [e for e in events if isinstance(e, Improved)]
    assert improved and sol.status == "feasible"
    # a mask it reported (the last one, or an earlier one whose exact check was done when it was killed)
    assert any(np.array_equal(sol.mask, e.mask) for e in improved) and sol.objective == int(sol.mask.sum())
    assert sol.objective >= reference.objective == reference.lower_bound
    assert sol.certificate.valid and certify(PROBLEM, sol.mask).valid  # re-checked independently
    assert sol.lower_bound == improved[-1].lower_bound <= sol.objective
    assert "killed at the deadline" in sol.proof


def test_a_punctual_solver_is_returned_as_is():
    sol = solve_isolated(PROBLEM, "auto", 30.0)
    direct = solve(PROBLEM, timeout=30)
    assert sol.status == direct.status == "optimal" and sol.objective == direct.objective
    assert sol.certificate.valid and "isolated_total" in sol.timings


def test_crashes_silence_and_memory_blowups_are_unknown_with_the_reason():
    crashed = solve_isolated(PROBLEM, "auto", 5.0, solver=_crash)
    assert crashed.status == "unknown" and crashed.mask is None and "RuntimeError" in crashed.proof
    assert "boom" not in crashed.proof  # no exception internals in answers
    t0 = time.perf_counter()
    silent = solve_isolated(PROBLEM, "auto", 0.5, grace=0.5, solver=_silent)
    assert silent.status == "unknown" and time.perf_counter() - t0 < 5 and "deadline" in silent.proof
    hog = solve_isolated(PROBLEM, "auto", 20.0, memory_mb=256, solver=_hog)
    assert hog.status == "unknown" and ("memory" in hog.proof or "signal" in hog.proof)


def test_portfolio_races_the_registry_backends_and_proves():
    sol = solve_isolated(PROBLEM, "portfolio", 30.0)
    assert sol.status == "optimal" and sol.backend.startswith("portfolio:") and sol.certificate.valid
    assert sol.objective == solve(PROBLEM, timeout=30).objective


def _crashing(problem, backend, timeout, progress):
    if backend == "highs":
        import os

        os._exit(134)  # what a z3 or HiGHS abort looks like to the parent
    if backend == "z3":
        raise MemoryError("solver blew up")
    return solve_network(problem, backend, timeout, progress=progress)


def _all_crash(problem, backend, timeout, progress):
    import os

    os._exit(134)


def test_whole_network_portfolio_proves_and_survives_crashing_members():
    p = random_network(5)
    sol = solve_isolated(p, "portfolio", 30.0)
    assert sol.status == "optimal" and sol.backend.startswith("portfolio:")
    assert sol.objective == reference_minimum(p) and sol.certificate.valid
    p = random_network(6)
    sol = solve_isolated(p, "portfolio", 30.0, solver=_crashing)
    assert sol.status == "optimal" and sol.backend == "portfolio:enum" and sol.objective == reference_minimum(p)
    lost = solve_isolated(p, "portfolio", 5.0, solver=_all_crash)
    assert lost.status == "unknown" and lost.mask is None and "signal" not in lost.proof and "exit code 134" in lost.proof


def test_a_stopped_solve_answers_at_once_with_a_mask_certified_while_it_ran(monkeypatch):
    """Issue 28.9: the server's drain (stop_early) ends a running solve; its answer is the best reported
    mask with the certificate the runner made while the child worked, not an exact check made after
    the stop (seconds on a large first layer under load)."""
    import threading

    from smug.isolation import runner

    checks: list[tuple[float, int]] = []  # (when, mask size) of every exact check in this process
    monkeypatch.setattr(runner, "certify", lambda p, m: checks.append((time.perf_counter(), int(m.sum())))
                        or certify(p, m))
    events: list = []
    ready = threading.Event()

    def progress(ev):
        events.append(ev)
        if isinstance(ev, Improved):
            threading.Timer(runner.CERTIFY_AFTER_S + 0.5, ready.set).start()

    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(sol=solve_isolated(PROBLEM, "auto", 30.0, progress,
                                                                           solver=_stuck)))
    worker.start()
    try:
        assert ready.wait(20)
        stopped = time.perf_counter()
        runner.stop_early()
        worker.join(10)
    finally:
        runner.resume()
    sol = out["sol"]
    assert time.perf_counter() - stopped < 1.0 and sol.status == "feasible" and sol.certificate.valid
    assert "stopped early" in sol.proof and any(np.array_equal(sol.mask, e.mask) for e in events
                                               if isinstance(e, Improved))
    assert checks and all(when < stopped for when, _ in checks)  # every check was made before the stop
