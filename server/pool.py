"""Solver worker processes: dispatch, deadlines, memory cap, cancellation, replacement.

A request takes an idle worker (waiting in line while all are busy or still starting),
sends it one job and relays its events (:mod:`smug.events`).  A worker is idle only once it
is warm: a new or replacement worker joins the line when it has imported the solvers and
loaded its ``--preload`` models, so its start never counts against a request's deadline and a
deadline shorter than a cold start cannot get one fresh worker after another killed.

Time comes from one place, the job's :class:`~smug.deadline.Deadline` (when the answer is due
at the client): the worker is told that deadline less ``margin`` (the time the answer needs to
travel back), a request waits in line until then at most, and an answer that comes later than
the client's deadline is not sent.  The worker is killed (SIGKILL) and replaced by a fresh one
when the client cancels, when it is still busy ``grace`` seconds past the client's deadline, when
its resident memory passes ``memory_mb``, or when it reported running out of memory; a worker
that died on its own is replaced too.  A job the worker itself reports as failed (bad input, a bug)
leaves the worker in service.  Nothing a worker does can take the server down.

Each worker leads its own process group, which every solver process it forks joins, so
killing a worker kills the group: no solver outlives its request, even when the worker
itself was killed from outside.  A worker whose server died (even by SIGKILL) kills its
group and exits (:mod:`smug.server.worker`).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from smug.common import proc_status_bytes
from smug.deadline import Deadline
from smug.events import Event
from smug.server.errors import ServiceError
from smug.server.worker import worker_main

POLL_S = 0.05
MEMORY_CHECK_S = 0.2
START_S = 300.0  # a starting worker silent this long (imports, --preload) is replaced
KILLED_BY = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}  # signals sent from outside, not crashes


def _rss_mb(pid: int) -> float:
    return proc_status_bytes("VmRSS", pid) / 2**20


@dataclass
class Worker:
    process: mp.Process
    conn: object
    jobs: int = 0
    _kill_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """Kill the process and its process group (its solver children), close its pipe; safe to call
        twice or from two threads at once (a replaced worker and a shutting-down pool may both kill it)."""
        with self._kill_lock:
            try:
                os.killpg(self.pid, signal.SIGKILL)  # the group outlives a dead leader while a solver runs
            except (ProcessLookupError, PermissionError):
                pass
            if self.process.is_alive():
                self.process.kill()
            self.process.join(timeout=5)
            if not self.conn.closed:
                self.conn.close()


@dataclass
class PoolJob:
    """One unit of work for a worker process and how to watch it (not a farm job:
    :class:`smug.farm.jobs.Job` is a batch's request with its id)."""

    kind: str
    payload: dict
    on_event: Callable[[Event], None] = lambda ev: None
    cancelled: Callable[[], bool] = lambda: False
    deadline: Deadline = field(default_factory=Deadline)  # the answer is due at the client (none: no limit)
    stats: dict = field(default_factory=dict)  # queue_s, work_s, worker pid


class _Reported(ServiceError):
    """A failure the worker reported itself: the worker is healthy and stays in service."""


class _NotStarted(ServiceError):
    """The worker died before it said a word of the job: it never began it."""


class WorkerPool:
    def __init__(self, size: int, threads: int = 1, memory_mb: int = 4096, grace: float = 2.0,
                 preload: tuple[str, ...] = (), margin: float = 0.5):
        self._ctx = mp.get_context("spawn")
        self._args = (threads, tuple(preload), os.getpid())
        self.memory_mb = memory_mb
        self.grace = grace
        self.margin = margin  # a worker's deadline is the client's less this: the answer's way back
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._workers: dict[int, Worker] = {}
        self._busy: set[int] = set()  # pids of workers running a job
        self.replaced = 0
        self._closed = False
        atexit.register(self.close, 1.0)  # before multiprocessing's own exit hook joins the workers
        for _ in range(size):
            self._spawn()

    # ---- processes ---------------------------------------------------------
    def _spawn(self) -> Worker:
        """Start a worker; it joins the idle queue once it says it is warm (:meth:`_when_ready`)."""
        parent, child = self._ctx.Pipe()
        # not daemonic: a worker may start its own children (portfolio backends, isolated solves)
        proc = self._ctx.Process(target=worker_main, args=(child, *self._args), daemon=False, name="smug-worker")
        proc.start()
        child.close()
        w = Worker(proc, parent)
        with self._lock:
            self._workers[proc.pid] = w
        threading.Thread(target=self._when_ready, args=(w,), daemon=True, name=f"smug-start-{proc.pid}").start()
        return w

    def _when_ready(self, w: Worker) -> None:
        """Put ``w`` in the idle queue once it has imported the solvers and loaded its ``--preload`` models:
        a cold worker never takes a job, so its start never counts against a request's deadline (a
        request waits in line instead, up to its deadline, and the worker keeps warming).  A worker
        that dies or stays silent for :data:`START_S` while starting is replaced."""
        try:
            ready = w.conn.poll(START_S) and w.conn.recv() == ("ready", w.pid)
        except (EOFError, OSError):
            ready = False
        if ready:
            self._idle.put(w)
        elif not self._closed:
            time.sleep(POLL_S)  # no busy loop when workers cannot start at all
            self._replace(w)

    def _replace(self, w: Worker) -> None:
        w.kill()
        with self._lock:
            self._workers.pop(w.pid, None)
            self.replaced += 1
            closed = self._closed
        if not closed:
            self._spawn()

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(self._workers)

    def hurry(self) -> None:
        """Tell every busy worker to stop its solves now and answer with the best verified mask
        so far (SIGUSR1; used when the server drains)."""
        with self._lock:
            busy = list(self._busy)
        for pid in busy:
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def rss_mb(self) -> float:
        """Resident memory of all workers (MB)."""
        return sum(_rss_mb(pid) for pid in self.pids())

    # ---- jobs --------------------------------------------------------------
    def _acquire(self, job: PoolJob) -> Worker:
        while True:
            if job.cancelled():
                raise ServiceError("CANCELLED", "the client cancelled the request while it waited for a worker")
            if job.deadline.minus(self.margin).expired():
                raise ServiceError("DEADLINE_EXCEEDED", "the deadline passed while the request waited for a worker")
            try:
                w = self._idle.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if w.process.is_alive() and not w.conn.poll(0):  # an idle worker says nothing; a dead one's pipe ends
                return w
            self._replace(w)  # died while idle (e.g. killed from outside): a fresh one joins

    def run(self, job: PoolJob):
        """The job's result; raises :class:`ServiceError` for every failure.  A worker that died before
        it said anything of the job (killed while idle, just before the job reached it) never began
        it: the job goes once more to another worker."""
        try:
            return self._run_once(job)
        except _NotStarted:
            return self._run_once(job)

    def _run_once(self, job: PoolJob):
        t0 = time.time()
        w = self._acquire(job)
        job.stats.update(queue_s=time.time() - t0, pid=w.pid)
        t1 = time.time()
        healthy = False
        with self._lock:
            self._busy.add(w.pid)
        try:
            result = self._watch(w, job)
            healthy = True
            return result
        except _Reported as exc:  # the worker answered: it is fine, unless it ran out of memory
            healthy = exc.code != "RESOURCE_EXHAUSTED"
            raise ServiceError(exc.code, exc.message) from None
        except ServiceError as exc:
            if exc.code == "DEADLINE_EXCEEDED_KILLED":
                raise ServiceError("DEADLINE_EXCEEDED", exc.message) from None
            raise
        finally:
            with self._lock:
                self._busy.discard(w.pid)
            job.stats["work_s"] = time.time() - t1
            w.jobs += 1
            if healthy and w.process.is_alive():
                self._idle.put(w)
            else:
                self._replace(w)

    def _watch(self, w: Worker, job: PoolJob):
        try:
            w.conn.send((job.kind, {**job.payload, "deadline": job.deadline.minus(self.margin)}))
        except (OSError, EOFError):
            raise _NotStarted("UNAVAILABLE", "the worker process died before the job started; it was replaced: "
                                             "retry") from None
        kill_at = job.deadline.at + self.grace
        next_mem = time.time() + MEMORY_CHECK_S
        heard = False  # any message of this job yet: a worker silent until it died never began the job
        while True:
            if w.conn.poll(POLL_S):
                try:
                    msg = w.conn.recv()
                except (EOFError, OSError):
                    raise self._died(w, heard) from None
                heard = True
                if msg[0] == "event":
                    job.on_event(msg[1])
                    continue
                if msg[0] == "result" and job.deadline.expired():
                    raise ServiceError("DEADLINE_EXCEEDED", f"the answer was ready {time.time() - job.deadline.at:.2f} s "
                                                            "after the client's deadline; it was not sent")
                if msg[0] == "result":
                    return msg[1]
                raise _Reported(msg[1], msg[2])
            now = time.time()
            if not w.process.is_alive():
                raise self._died(w, heard)
            if job.cancelled():
                raise ServiceError("CANCELLED", "the client cancelled the request; its worker was stopped")
            if now > kill_at:
                raise ServiceError("DEADLINE_EXCEEDED_KILLED",
                                   f"the worker ran {now - job.deadline.at:.1f} s past the client's deadline; it was "
                                   "killed and replaced")
            if now >= next_mem:
                next_mem = now + MEMORY_CHECK_S
                rss = _rss_mb(w.pid)
                if rss > self.memory_mb:
                    raise ServiceError("RESOURCE_EXHAUSTED",
                                       f"the worker used {rss:.0f} MB (cap {self.memory_mb} MB); it was killed and replaced")

    @staticmethod
    def _died(w: Worker, heard: bool = True) -> ServiceError:
        """A worker that died mid-job: killed by a signal from outside (an operator, the kernel's OOM
        killer, a shutting-down system) is ``UNAVAILABLE``, worth a retry on the fresh worker; a crash
        (a fault signal) or an exit of its own is a bug, ``INTERNAL``; one that died before a word of
        the job is :class:`_NotStarted` (:meth:`run` sends it on)."""
        w.process.join(timeout=1)
        code = w.process.exitcode
        if not heard:
            return _NotStarted("UNAVAILABLE", f"the worker process died (exit code {code}) before the job started")
        if code is not None and -code in KILLED_BY:
            return ServiceError("UNAVAILABLE", f"the worker process was killed ({signal.Signals(-code).name}) during "
                                               "the request; it was replaced: retry")
        return ServiceError("INTERNAL", f"the worker process died (exit code {code}); it was replaced")

    def close(self, timeout: float = 5.0) -> None:
        atexit.unregister(self.close)
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
        for w in workers:
            try:
                w.conn.send(None)
            except (OSError, EOFError):
                pass
        end = time.time() + timeout
        for w in workers:
            w.process.join(timeout=max(0.0, end - time.time()))
            w.kill()
        with self._lock:
            self._workers.clear()
