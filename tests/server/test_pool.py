"""The worker pool: its time comes from the job's Deadline, and a worker's death is named for what it was."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import grpc
import pytest

from smug.deadline import Deadline
from smug.pipeline import ExplainRequest
from smug.server.pool import PoolJob, Worker, WorkerPool


@pytest.mark.parametrize("how,code", [("SIGKILL", "UNAVAILABLE"), ("SIGTERM", "UNAVAILABLE"), ("exit", "INTERNAL")])
def test_a_killed_worker_is_unavailable_and_a_crash_is_internal(how, code):
    """Issue 28.9: a worker killed from outside mid-job (an operator, the OOM killer, a stopping system)
    answers UNAVAILABLE, worth a retry; INTERNAL is kept for bugs (here: an exit of its own)."""
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=os._exit if how == "exit" else time.sleep, args=(3,) if how == "exit" else (30,))
    proc.start()
    if how != "exit":
        os.kill(proc.pid, getattr(signal, how))
    proc.join(5)
    err = WorkerPool._died(Worker(proc, mine), heard=True)
    assert err.code == code and getattr(grpc.StatusCode, err.code)
    assert ("killed" in err.message) == (code == "UNAVAILABLE")


def test_the_worker_gets_the_jobs_deadline_less_the_margin(server, client):
    """The pool alone turns the client's Deadline into the worker's (less its margin, 1.5 s here): a
    whole-network solve that needs seconds to prove answers with its verified mask before the worker's
    deadline, never by the client's, and the job carries no other time."""
    client.explain(model="mnist-mlp", method="whole-network", timeout=30.0)  # a warm worker is idle
    request = ExplainRequest.build(None, "mnist-mlp", method="whole-network", window=1, timeout=60.0)
    due = Deadline.after(4.0)
    e = server.pool.run(PoolJob("explain", {"request": request}, deadline=due))
    assert server.pool.margin == 1.5 and e.certificate["valid"] and e.status in ("feasible", "optimal")
    assert time.time() <= due.at - 0.5  # answered by the worker's deadline plus the answer's way back
