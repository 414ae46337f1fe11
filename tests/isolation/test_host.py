"""Solve hosts: one forked process serves solve after solve; a killed or failed one is never reused."""

from __future__ import annotations

import os
import resource
import sys
import textwrap

import numpy as np
from smug.isolation import host as solve_host
from smug.isolation.runner import solve_isolated
from smug.solver.solve import solve

from _reference import random_network, reference_minimum


def _whoami(problem, backend, timeout, progress):
    progress({"event": "note", "pid": os.getpid()})
    return {"pid": os.getpid(), "cap": resource.getrlimit(resource.RLIMIT_AS)[0], "sum": float(np.sum(problem))}


def _crash(problem, backend, timeout, progress):
    raise RuntimeError("boom")


def _messages(host: solve_host.Host) -> list[tuple]:
    out = []
    while not out or out[-1][0] not in ("result", "error"):
        out.append(host.conn.recv())
    return out


def test_hosts_are_reused_and_ended():
    host = solve_host.start(_whoami, np.arange(4.0), "auto", 5.0, 256)
    msgs = _messages(host)
    assert msgs[0] == ("event", {"event": "note", "pid": host.process.pid})
    kind, answer = msgs[-1]
    assert kind == "result" and answer["pid"] == host.process.pid != os.getpid() and answer["sum"] == 6.0
    assert answer["cap"] != resource.RLIM_INFINITY  # the job ran under the memory cap
    solve_host.finish(host, reusable=True)

    again = solve_host.start(_whoami, np.ones(3), "auto", 5.0, None)
    kind, answer = _messages(again)[-1]
    assert again.process.pid == host.process.pid and answer["sum"] == 3.0  # the same process, the new job
    assert answer["cap"] == resource.getrlimit(resource.RLIMIT_AS)[0]  # the cap was lifted after the first job
    solve_host.finish(again, reusable=False)  # ended (as at a deadline): never handed out again
    assert not again.process.is_alive()

    third = solve_host.start(_whoami, np.ones(2), "auto", 5.0, None)
    assert third.process.pid != host.process.pid and _messages(third)[-1][1]["sum"] == 2.0
    solve_host.finish(third, reusable=True)


def test_a_host_that_failed_exits_and_the_next_solve_gets_another():
    host = solve_host.start(_crash, np.ones(2), "auto", 5.0, None)
    assert _messages(host)[-1] == ("error", "crashed: RuntimeError")
    host.process.join(timeout=5)
    assert host.process.exitcode == 0  # it ended by itself after reporting
    solve_host.finish(host, reusable=False)
    nxt = solve_host.start(_whoami, np.ones(2), "auto", 5.0, None)
    assert nxt.process.pid != host.process.pid and _messages(nxt)[-1][0] == "result"
    solve_host.finish(nxt, reusable=True)


def test_a_solver_from_a_module_imported_after_the_host_was_forked(tmp_path, monkeypatch):
    idle = solve_host.start(_whoami, np.ones(1), "auto", 5.0, None)
    _messages(idle)
    solve_host.finish(idle, reusable=True)  # an idle host that has never seen the module below
    (tmp_path / "late_solver_module.py").write_text(textwrap.dedent("""
        import os
        def late(problem, backend, timeout, progress):
            return {"pid": os.getpid(), "sum": float(problem.sum())}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import late_solver_module

    host = solve_host.start(late_solver_module.late, np.ones(5), "auto", 5.0, None)
    kind, answer = _messages(host)[-1]
    assert kind == "result" and answer["sum"] == 5.0 and host.process.pid != idle.process.pid  # a fresh host
    solve_host.finish(host, reusable=True)
    sys.modules.pop("late_solver_module")


def test_a_forked_copy_of_the_caller_does_not_use_its_hosts():
    host = solve_host.start(_whoami, np.ones(1), "auto", 5.0, None)
    _messages(host)
    solve_host.finish(host, reusable=True)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the copy: no idle host of its parent is visible
        os.write(write, bytes([len(solve_host._HOSTS.idle) == 0]))
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"\x01"
    assert host.usable()  # and the parent's host is still there for the parent


def test_answers_from_a_reused_host_equal_a_direct_solve():
    from smug.bench.hard_instances import hard_first_layer

    problem = hard_first_layer(size=24, k=60)
    direct = solve(problem, timeout=30)
    for _ in range(3):  # the first solve may fork the host; the next ones reuse it
        sol = solve_isolated(problem, "auto", 30.0)
        assert sol.status == direct.status == "optimal" and sol.objective == direct.objective
        assert sol.certificate.valid
    p = random_network(3)
    for _ in range(2):
        sol = solve_isolated(p, "auto", 30.0)
        assert sol.status == "optimal" and sol.objective == reference_minimum(p) and sol.certificate.valid


def _state(problem, backend, timeout, progress):
    """What a job sees of the host's global state, then changes it (the next job must not see that)."""
    import random

    import z3

    seen = {"random": random.random(), "numpy": float(np.random.random()),
            "z3_ids": z3.Bool("probe").get_id(), "models": len(z3.z3._on_models)}
    opt = z3.Optimize()  # a model callback left in z3's module-level table, and terms in its main context
    opt.set_on_model(lambda model: None)
    opt.add(z3.Or(z3.Bool("a"), z3.Bool("b")))
    opt.add_soft(z3.Not(z3.Bool("a")))
    opt.check()
    random.random(), np.random.random(10)
    opt.cycle = (opt, [z3.Int(f"x{i}") for i in range(100)])  # a reference cycle: freed only by a collection
    return seen


def test_a_reused_host_carries_no_state_from_the_job_before():
    """Issue 31 (one answer per request): a warm host starts each job as a fresh one does."""
    fresh = solve_host.start(_state, np.ones(1), "auto", 5.0, None)
    first = _messages(fresh)[-1][1]
    solve_host.finish(fresh, reusable=True)
    for _ in range(2):
        warm = solve_host.start(_state, np.ones(1), "auto", 5.0, None)
        assert warm.process.pid == fresh.process.pid  # the same process, a later job
        assert _messages(warm)[-1][1] == first
        solve_host.finish(warm, reusable=True)


def test_the_same_request_gives_the_same_mask_bits_in_a_warm_process():
    """Issue 31: the same problem 4 times through the (reused) solve hosts, each backend and the
    portfolio: the same mask bits every time, the canonical one, whichever backend answers."""
    from smug.bench.hard_instances import hard_first_layer
    from smug.solver.solve import CANONICAL

    problem = hard_first_layer(size=40, k=200)
    masks = set()
    for backend in ("auto", "highs", "z3", "portfolio"):
        for _ in range(4):
            sol = solve_isolated(problem, backend, 60.0)
            assert sol.status == "optimal" and sol.stats["tie_break"] == CANONICAL and sol.certificate.valid
            masks.add(np.packbits(sol.mask).tobytes())
    assert len(masks) == 1
