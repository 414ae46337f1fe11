"""The worker's solver hook: a solve that overruns its timeout still answers in time."""

from __future__ import annotations

import time

import numpy as np

from smug.encoders.hard_instances import hard_first_layer
from smug.server import worker
from smug.solver.certificate import certify
from smug.solver.solve import solve


def test_an_overrunning_solver_answers_with_its_best_reported_mask(monkeypatch):
    problem = hard_first_layer(size=48, k=200)
    reference = solve(problem, timeout=30)
    monkeypatch.setattr(worker._Retire, "flag", False)

    def stuck(problem, backend, timeout, progress):  # reports like solve(), then ignores its timeout
        solve(problem, backend=backend, timeout=30, progress=progress)
        time.sleep(30)

    events: list[dict] = []
    t0 = time.perf_counter()
    sol = worker._held_to_timeout(stuck, problem, "auto", 1.0, events.append)
    assert time.perf_counter() - t0 < 10
    improved = [e for e in events if e.get("event") == "improved"]
    assert improved and sol.status == "feasible" and worker._Retire.flag  # the worker asks to be replaced
    # the best mask reported within the 1 s timeout (the optimum on a quiet machine, maybe not under load)
    assert np.array_equal(sol.mask, improved[-1]["mask"]) and sol.objective == improved[-1]["size"]
    assert sol.objective >= reference.objective == reference.lower_bound
    assert sol.certificate.valid and certify(problem, sol.mask).valid
    assert sol.lower_bound == improved[-1]["lower_bound"] <= sol.objective


def test_a_punctual_solver_is_returned_as_is(monkeypatch):
    problem = hard_first_layer(size=48, k=200)
    monkeypatch.setattr(worker._Retire, "flag", False)
    sol = worker._held_to_timeout(solve, problem, "auto", 30.0, lambda ev: None)
    assert sol.status == "optimal" and not worker._Retire.flag and sol.certificate.valid


def test_a_late_solver_without_a_mask_is_waited_for(monkeypatch):
    problem = hard_first_layer(size=48, k=200)
    monkeypatch.setattr(worker._Retire, "flag", False)

    def slow_start(problem, backend, timeout, progress):  # reports nothing before its timeout
        time.sleep(1.0)
        return solve(problem, backend=backend, timeout=30, progress=progress)

    sol = worker._held_to_timeout(slow_start, problem, "auto", 0.2, lambda ev: None)
    assert sol.status == "optimal" and not worker._Retire.flag
