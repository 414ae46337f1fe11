"""Run keyed tasks on a Dask cluster, at most one per worker thread in flight, each ending exactly once.

The one submission loop under the farm (:func:`smug.farm.run`) and ``smug evaluate
--workers`` (:mod:`smug.evaluation.runner`).  A task is ``(key, function, args)``; Dask
runs ``function(*args)`` on a worker and :func:`dispatch` yields a :class:`Finished`
per task, in the order they finish.

Flow control: at most one task per worker thread is in flight (plus ``prefetch``,
default 0), topped up as results arrive, so the scheduler hands a worker its next task
only when it is free.  This keeps a dying worker's blast radius to the task it was
running: Dask counts a worker's death against every task assigned to it, queued ones
included, so a task prefetched behind a poison task could be charged its deaths and end
as failed although it is innocent.  ``prefetch`` > 0 hides the round trip through the
submitter (~15 ms a task on loopback, see ``bench/farm.py``) for batches of tiny tasks
that are known not to kill workers.

Attempts: each task announces its start on the scheduler's event log (topic
:data:`EVENT_TOPIC`); the submitter counts them per key.  A task that kills its worker
is re-run by Dask up to ``retries`` times, then ends as failed with that reason.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

EVENT_TOPIC = "smug-farm"  # a task announces each start here (the submitter counts attempts)


@dataclass(frozen=True)
class Task:
    """One unit of work: ``function(*args)`` on a worker, known by ``key`` (unique in a batch)."""

    key: str
    function: Callable
    args: tuple = ()


@dataclass(frozen=True)
class Finished:
    """How a task ended: its return value, or why the cluster could not finish it."""

    key: str
    value: Any = None  # the function's return value when ``failure`` is None
    failure: str | None = None
    attempts: int = 1
    worker: str | None = None


def announced(key: str, function: Callable, *args):
    """What Dask runs: announce this start (attempt counting), then ``function(*args)``."""
    _announce(key)
    return function(*args)


def worker_address() -> str:
    """The Dask worker running this code (``pid N`` outside a worker)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _announce(key: str) -> None:
    try:
        from distributed import get_worker

        w = get_worker()
    except (ImportError, ValueError):
        return
    w.log_event(EVENT_TOPIC, {"job": key, "pid": os.getpid()})


PREFETCH = 0  # tasks in flight beyond one per worker thread (see the module's docstring)


def dispatch(client, tasks: Iterable[Task], retries: int = 2, depends: Callable[[Task], tuple] | None = None,
             on_change: Callable[[int], None] | None = None, prefetch: int = PREFETCH) -> Iterator[Finished]:
    """Run ``tasks`` on ``client``'s cluster and yield each as it finishes.

    ``depends(task)``: extra arguments (Dask futures, e.g. a model shipped once) appended to
    the task's own.  ``on_change(in_flight)`` is called whenever the number of tasks in flight
    changes (progress displays); ``prefetch``: see the module's docstring.  Tasks not yet finished when the caller stops iterating are
    cancelled.
    """
    from distributed import as_completed

    waiting = collections.deque(tasks)
    in_flight: dict[str, Task] = {}
    starts: collections.Counter = collections.Counter()
    threads = _Threads(client)

    def on_event(event) -> None:
        _, msg = event
        if isinstance(msg, dict) and "job" in msg:
            starts[msg["job"]] += 1

    def top_up(pending) -> None:
        while waiting and len(in_flight) < threads() + prefetch:
            task = waiting.popleft()
            extra = depends(task) if depends else ()
            future = client.submit(announced, task.key, task.function, *task.args, *extra, key=task.key,
                                   pure=False, retries=retries)
            in_flight[future.key] = task
            pending.add(future)
        if on_change:
            on_change(len(in_flight))

    client.subscribe_topic(EVENT_TOPIC, on_event)
    pending = as_completed()
    try:
        top_up(pending)
        for future in pending:
            task = in_flight.pop(future.key)
            done = _finished(task.key, future, max(1, starts.pop(task.key, 0)))
            future.release()
            top_up(pending)  # the next task first: the caller's work on this result overlaps it
            yield done
    finally:
        left = list(getattr(pending, "futures", ()))
        if left:
            client.cancel(left)
        client.unsubscribe_topic(EVENT_TOPIC)


def _finished(key: str, future, attempts: int) -> Finished:
    if future.status == "finished":
        return Finished(key, future.result(), attempts=attempts)
    if future.status == "cancelled":
        return Finished(key, failure="cancelled (the cluster lost it)", attempts=attempts)
    exc = future.exception()
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        n = exc.allowed_failures + 1
        return Finished(key, failure=f"killed its worker {n} times (memory past the worker's limit or a crash "
                                     f"outside the isolated solve)", attempts=max(n, attempts))
    return Finished(key, failure=f"{type(exc).__name__}: {exc}", attempts=attempts)


class _Threads:
    """The cluster's worker threads, asked of the scheduler at most once a second."""

    def __init__(self, client):
        self.client, self.value, self.at = client, 1, 0.0

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self.at > 1.0:
            self.value, self.at = max(1, sum(self.client.nthreads().values())), now
        return self.value
