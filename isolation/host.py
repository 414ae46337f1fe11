"""Solve hosts: forked child processes that run one solve at a time and are kept for the next.

Forking a child per solve cost a whole-network MNIST job about a quarter of its CPU: the
fork copies the caller's page tables, the fresh child takes copy-on-write faults on every
page it writes, and its exit tears everything down again (measured in ``bench/farm.py``:
about 20 ms of kernel time a job of 65 ms).  A host is forked once and then receives
each job through a pipe: ``(solver, problem, backend, timeout, memory_mb)``, pickled.

Protocol, parent -> host: a job (an idle host past :data:`MAX_IDLE_HOSTS` is killed, as at a
deadline).  Host -> parent, per job:
``("started", None)`` once the job is unpickled (or ``("unusable", why)``: a host forked
before the solver's module was imported cannot load it; the parent retries on a fresh
host), then any number of ``("event", dict)``, then ``("result", Solution)`` or
``("error", why)``.  A host that reported an error exits; one that answered waits for
the next job.  A host is used by one solve at a time; the caller kills it at the
deadline or when it stops early, and a killed host is never reused.

A host carries nothing from one job to the next that could change an answer (issue 31: one
answer per request): after each job :func:`_forget_job` collects the job's garbage (z3 keeps
model callbacks in a module-level table, freed only when their ``Optimize`` is), drops z3's
main context (``network_z3`` builds its terms there; first-layer searches make their own) and
puts Python's and numpy's global random generators back to their state at the host's start.
The answers do not rest on it: an optimal mask is the canonical one whatever state a solver
was in (:func:`smug.solver.z3_backend.canonical`).

Each job runs under ``RLIMIT_AS`` (the soft limit, lifted again after the job): what the
host has mapped plus ``memory_mb``, less its free heap (:func:`memory_limit`).  Hosts are
forked by one long-lived thread, so that ``PR_SET_PDEATHSIG`` (which fires when the
forking *thread* ends) kills them only when this process dies.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
import queue
import random
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Callable

import numpy as np

from smug.common import proc_status_bytes
from smug.isolation.limits import die_with_parent, free_heap_bytes, keep_freed_memory, memory_limit, trim_heap

MAX_IDLE_HOSTS = 4  # kept between solves (a portfolio races up to this many backends)
START_S = 30.0  # longest wait for a host to load a job


# ---- the host's side ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Start:
    """What a job may change in a host and :func:`_forget_job` puts back: the global random states."""

    python: object
    numpy: dict

    @classmethod
    def now(cls) -> "_Start":
        return cls(random.getstate(), np.random.get_state(legacy=False))


def _forget_job(start: _Start) -> None:
    """After a job: nothing of it may steer the next (see the module docstring)."""
    gc.collect()
    z3 = sys.modules.get("z3.z3")
    if z3 is not None and getattr(z3, "_main_ctx", None) is not None:
        z3._main_ctx = None  # z3 has no public reset: the next main_ctx() call makes a fresh context
        gc.collect()
    random.setstate(start.python)
    np.random.set_state(start.numpy)


def _host_main(conn: Connection, parent: int) -> None:
    """Entry point of a host: jobs from ``conn`` until an error or its pipe's end.
    Solver banners (HiGHS prints one) go to stderr: the caller's stdout carries only its own output."""
    gc.freeze()  # the parent's objects: never traversed (nor copied on write) by this host's collections
    keep_freed_memory()
    if parent:
        die_with_parent(parent)
    sys.stdout.flush()
    os.dup2(2, 1)
    start = _Start.now()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            job = pickle.loads(data)
        except Exception as exc:  # a solver from a module imported after this host was forked
            conn.send(("unusable", type(exc).__name__))
            return
        conn.send(("started", None))
        if not _serve(conn, *job):
            return
        _forget_job(start)
        trim_heap()


def _serve(conn: Connection, solver: Callable, problem, backend: str, timeout: float, memory_mb: int | None) -> bool:
    """One job under the memory cap; whether this host may take another."""
    import resource

    lock = threading.Lock()

    def send(message: tuple) -> None:
        with lock:
            conn.send(message)

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if memory_mb:
        limit = memory_limit(proc_status_bytes("VmSize"), memory_mb * 2**20, free_heap_bytes())  # libraries are mapped already
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        result = solver(problem, backend=backend, timeout=timeout, progress=lambda ev: send(("event", ev)))
    except MemoryError:
        send(("error", "ran out of memory (the per-solve memory cap)"))
        return False
    except BaseException as exc:  # report and end quietly: the parent decides
        send(("error", f"crashed: {type(exc).__name__}"))
        return False
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    send(("result", result))
    return True


# ---- the caller's side --------------------------------------------------------------------------------
@dataclass
class Host:
    """A host process and the caller's end of its pipe."""

    process: mp.Process
    conn: Connection
    owner: int  # the pid that forked it: a forked copy of the caller must not use it

    def usable(self) -> bool:
        return self.owner == os.getpid() and self.process.is_alive()

    def kill(self) -> None:
        """End the host now (it may be mid-solve) and reap it."""
        if self.owner != os.getpid():
            return
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=1)
        self.conn.close()


class _Forker:
    """A daemon thread that forks hosts on request (a plain thread: a host must not inherit a
    thread pool that its interpreter would try to join at exit)."""

    def __init__(self):
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="smug-solve-host-forker").start()

    def _loop(self) -> None:
        while True:
            reply = self.requests.get()
            try:
                reply.put(_fork_host())
            except BaseException as exc:  # handed to the caller
                reply.put(exc)

    def fork(self) -> Host:
        reply: queue.SimpleQueue = queue.SimpleQueue()
        self.requests.put(reply)
        out = reply.get()
        if isinstance(out, BaseException):
            raise out
        return out


class _Hosts:
    """Idle hosts of this process, and the one thread that forks new ones."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle: list[Host] = []
        self.forker: _Forker | None = None

    def take(self, fresh: bool = False) -> Host:
        """An idle host, or (``fresh``, or none idle) a new one."""
        with self.lock:
            while self.idle and not fresh:
                host = self.idle.pop()
                if host.usable():
                    return host
                host.kill()
            if self.forker is None:
                self.forker = _Forker()
            forker = self.forker
        return forker.fork()

    def give_back(self, host: Host) -> None:
        """Keep ``host`` for the next solve (at most :data:`MAX_IDLE_HOSTS`; the rest exit)."""
        with self.lock:
            if host.usable() and len(self.idle) < MAX_IDLE_HOSTS:
                self.idle.append(host)
                return
        host.kill()

    def forget(self) -> None:
        """In a forked copy of this process: the hosts and the forking thread are not its own."""
        self.lock = threading.Lock()
        self.idle = []
        self.forker = None


_HOSTS = _Hosts()
os.register_at_fork(after_in_child=_HOSTS.forget)


def _fork_host() -> Host:
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    process = ctx.Process(target=_host_main, args=(theirs, os.getpid()), daemon=True, name="smug-solve-host")
    process.start()
    theirs.close()
    return Host(process, mine, os.getpid())


def start(solver: Callable, problem, backend: str, timeout: float, memory_mb: int | None) -> Host:
    """A host running this job (it has loaded it); read its messages from ``host.conn``."""
    data = pickle.dumps((solver, problem, backend, timeout, memory_mb), protocol=pickle.HIGHEST_PROTOCOL)
    kind, why = "no answer", f"within {START_S:.0f} s"
    for fresh in (False, True):
        host = _HOSTS.take(fresh)
        try:
            host.conn.send_bytes(data)
            if host.conn.poll(START_S):
                kind, why = host.conn.recv()
                if kind == "started":
                    return host
        except (EOFError, OSError):  # it died while idle: another one
            kind, why = "died", None
        host.kill()
    raise RuntimeError(f"no solve process could load the job ({kind}: {why})")


def finish(host: Host, reusable: bool) -> None:
    """After a job: keep the host if it answered and may take another, else end it."""
    if reusable:
        _HOSTS.give_back(host)
    else:
        host.kill()
