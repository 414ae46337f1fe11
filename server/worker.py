"""The worker process: one job at a time from a pipe, events and the result back.

Workers are started with ``spawn`` (never ``fork`` from the threaded gRPC process) by
:class:`smug.server.pool.WorkerPool` and keep their models warm between jobs.  A job is
a validated :class:`~smug.pipeline.ExplainRequest` with its
:class:`~smug.deadline.Deadline` (the gRPC deadline minus the server's margin, set by the pool); the
worker calls the pipeline, which isolates the solve in a child process held to that
deadline, so the worker itself never runs a solver.

Messages, parent -> worker: ``(kind, payload)`` or ``None`` (exit); worker -> parent:
``("ready", pid)`` once, when it is warm (before any job), then ``("event", Event)`` (:mod:`smug.events`),
``("result", object)`` or ``("error", code, message)``.

A worker leads its own process group (its solver children join it, so the pool kills
them all at once), watches its server (when the server is gone, even killed by SIGKILL,
it kills its group and exits within :data:`PARENT_CHECK_S`), and takes SIGUSR1 as "stop
the solves now and answer with the best verified mask" (the server's drain).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import asdict
from typing import Callable

from smug.events import Event, Progress
from smug.isolation.runner import resume, stop_early

PARENT_CHECK_S = 0.2


def explain_job(job: dict, emit: Progress):
    from smug.pipeline import run

    return run(job["request"], progress=emit, deadline=job["deadline"])


def dump_job(job: dict, emit: Progress) -> dict:
    from smug.pipeline import dump

    d = dump(job["request"], progress=emit, format=job.get("format", "smt2"), bound=job.get("bound"))
    return {"text": d.text, "constraints": d.constraints, "format": job.get("format", "smt2")}


def inspect_job(job: dict, emit: Progress) -> dict:
    """Facts about a model file or zoo entry (:func:`smug.pipeline.models.model_facts`)."""
    from smug.pipeline.models import model_facts

    facts = asdict(model_facts(job["source"], bool(job.get("zoo"))))
    return {**facts, "input_shape": list(facts["input_shape"])}


JOBS: dict[str, Callable] = {"explain": explain_job, "dump": dump_job, "inspect": inspect_job}


def _error(exc: BaseException) -> tuple[str, str, str]:
    """A job's failure as ``("error", gRPC code name, message)``; never internals for bugs."""
    from smug.pipeline import DeadlineExceeded
    from smug.pipeline.models import InputError, ModelError

    if isinstance(exc, DeadlineExceeded):
        return "error", "DEADLINE_EXCEEDED", str(exc)
    if isinstance(exc, MemoryError):
        return "error", "RESOURCE_EXHAUSTED", "the worker ran out of memory"
    if isinstance(exc, (InputError, ModelError, ValueError)):
        return "error", "INVALID_ARGUMENT", str(exc)
    return "error", "INTERNAL", "the worker failed on this request (see the server log)"


def _watch_server(server: int) -> None:
    """Kill this worker's process group (itself and its solvers) once its server is gone."""
    while os.getppid() == server:
        time.sleep(PARENT_CHECK_S)
    try:
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(1)


def worker_main(conn, threads: int = 1, preload: tuple[str, ...] = (), server: int = 0) -> None:
    """Entry point of a worker process (spawned by process ``server``)."""
    os.setpgid(0, 0)  # its own group: the pool kills the worker with every solver it forked
    if server:
        threading.Thread(target=_watch_server, args=(server,), daemon=True, name="smug-watch-server").start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server; the server decides
    signal.signal(signal.SIGUSR1, lambda *_: stop_early())
    for var in ("SMUG_TORCH_THREADS", "OMP_NUM_THREADS", "SMUG_ORT_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    import logging

    from smug.pipeline.runner import warm

    warm(())  # imports numpy, onnx, onnxruntime and the solvers before the first job

    log = logging.getLogger("smug.server.worker")
    if preload:
        warm(tuple(preload))
    conn.send(("ready", os.getpid()))  # warm: the pool may hand it jobs now
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        kind, job = msg
        resume()
        lock = threading.Lock()

        def emit(ev: Event) -> None:
            with lock:
                conn.send(("event", ev))

        try:
            out = ("result", JOBS[kind](job, emit))
        except BaseException as exc:  # everything goes back to the parent, which decides
            out = _error(exc)
            if out[1] == "INTERNAL":  # a bug: the traceback goes to the server log, never to the client
                log.exception("worker job %s failed", kind)
        with lock:
            conn.send(out)
