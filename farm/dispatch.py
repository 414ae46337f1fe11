"""Run keyed tasks on a Dask cluster, at most one Dask task per worker thread at a time, each task ending once.

The one submission loop under the farm (:func:`smug.farm.run`), ``smug evaluate
--workers`` (:mod:`smug.evaluation.runner`) and the server's batches.  A task is ``(key,
function, args)``; a worker runs ``function(*args)`` and :func:`dispatch` yields a
:class:`Finished` per task, in the order they finish.

Flow control: a worker holds at most one Dask task per thread.  This keeps a dying
worker's blast radius to the task it was running: Dask counts a worker's death against
every task assigned to it, waiting ones included, so a task waiting behind a poison task
could be charged its deaths and end as failed although it is innocent.  Two ways to get
there:

* **scheduler queue** (used when the scheduler's ``distributed.scheduler.worker-saturation``
  is at most 1.0, as on the farm's embedded cluster): a window of tasks larger than twice
  the cluster's threads is submitted in one message, so Dask treats them as root tasks and
  holds them in its own queue, handing a worker its next task the moment it reports the
  last one, with no round trip through this process;
* **one per thread** (otherwise, and for batches too small to be queued): the submitter
  keeps one task per worker thread in flight and tops up as results arrive.

Chunks: each Dask task costs ~10 ms of CPU in the scheduler, the worker and this process
(``bench/farm.py``), a lot beside tasks of 30-100 ms (whole-network MNIST). Once the
first results show tasks that short, consecutive tasks travel together as one Dask task
of about :data:`CHUNK_SECONDS` (their results come back together: a progress display
moves in steps of about that, and a worker's death costs about that much work again; on
2 workers, medians of 5 rounds: 1.74x a one-thread loop with chunks of 0.5 s, 1.65-1.83x
with 2 s (1.69x over 9 rounds, against 1.84x for a pool without Dask), within the
machine's noise, see ``docs/benchmarks.md``); the last tasks of a batch stay small so
that the workers finish together. A chunk that does not come back (it killed its worker
``allowed-failures + 1`` times) is split: each of its tasks runs again alone, so only
the task that kills workers ends as failed.

Attempts: each Dask task announces each of its starts on the scheduler's event log (topic
:data:`EVENT_TOPIC`, one message naming every task it carries); the submitter counts them
per task, so a task's attempts are the starts of the Dask tasks that carried it (a chunk
killed with its worker counts for each of its tasks, run or not).  One message per Dask
task, not per task: a message per task cost about 2 ms of CPU a task in the workers and
the client together (4 rounds of 200 MNIST jobs on 2 workers, ``psutil``).  A task that
kills its worker is re-run by Dask up to ``retries`` times, then ends as failed with that
reason.
"""

from __future__ import annotations

import collections
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

EVENT_TOPIC = "smug-farm"  # a Dask task announces each start here: {"jobs": [keys], "pid"} (attempts)
SATURATION_KEY = "distributed.scheduler.worker-saturation"
CHUNK_SECONDS = 2.0  # a chunk of short tasks lasts about this long
MAX_CHUNK = 32
KEY_PREFIX = "smug-task"  # every Dask task of a dispatch: one task group, so that the scheduler can queue it


@dataclass(frozen=True)
class Task:
    """One unit of work: ``function(*args)`` on a worker, known by ``key`` (unique in a batch)."""

    key: str
    function: Callable
    args: tuple = ()


@dataclass(frozen=True)
class Finished:
    """How a task ended: its return value, or why it has none."""

    key: str
    value: Any = None  # the function's return value when ``failure`` is None
    failure: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class Ran:
    """One task's run on a worker: its value, or the exception it raised (as text)."""

    value: Any = None
    error: str | None = None
    seconds: float = 0.0


def run_tasks(members: list[tuple[str, Callable, tuple]]) -> list[Ran]:
    """What Dask runs: each ``(key, function, args)`` in turn, after announcing the start of
    all of them.  An exception ends that task only; ``MemoryError`` (the worker is short of
    memory) goes to Dask, which retries the whole Dask task."""
    _announce([key for key, _, _ in members])
    out = []
    for _, function, args in members:
        t0 = time.perf_counter()
        try:
            out.append(Ran(function(*args), seconds=time.perf_counter() - t0))
        except MemoryError:
            raise
        except Exception as exc:
            out.append(Ran(error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0))
    return out


def worker_address() -> str:
    """The Dask worker running this code (``pid N`` outside a worker)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _announce(keys: list[str]) -> None:
    """Tell the submitter (and anyone reading the event log) that ``keys`` start on this worker."""
    try:
        from distributed import get_worker

        w = get_worker()
    except (ImportError, ValueError):
        return
    w.log_event(EVENT_TOPIC, {"jobs": keys, "pid": os.getpid()})


def chunk_size(median_s: float | None, waiting: int, threads: int) -> int:
    """Tasks per Dask task: enough to last :data:`CHUNK_SECONDS`, at most :data:`MAX_CHUNK`,
    and small enough to leave at least four Dask tasks per thread for the batch's end."""
    if median_s is None:
        return 1
    by_time = int(CHUNK_SECONDS / max(median_s, 1e-3))
    return max(1, min(MAX_CHUNK, by_time, waiting // (4 * threads)))


class Pending:
    """Tasks made on demand: ``make(item)`` for each of ``items`` as it is about to be sent, so
    that a batch holds only its tasks in flight (an image's bytes, say), not all of them.
    ``items`` may be a stream (read as tasks go out) of ``size`` items (default: ``len(items)``)."""

    def __init__(self, items: Iterable, make: Callable[[Any], Task], size: int | None = None):
        self.items, self.make = items, make
        self.size = len(items) if size is None else size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[Task]:
        return map(self.make, self.items)


class _Waiting:
    """Tasks not sent yet: drawn from the caller's iterable when needed, plus those put back."""

    def __init__(self, tasks: Iterable[Task]):
        if not hasattr(tasks, "__len__"):
            tasks = list(tasks)
        self.left, self.source, self.back = len(tasks), iter(tasks), collections.deque()

    def __len__(self) -> int:
        return self.left

    def popleft(self) -> Task:
        task = self.back.popleft() if self.back else next(self.source)
        self.left -= 1
        return task

    def extendleft(self, tasks: Iterable[Task]) -> None:
        before = len(self.back)
        self.back.extendleft(tasks)
        self.left += len(self.back) - before


def dispatch(client, tasks: Iterable[Task], retries: int = 2, depends: Callable[[Task], tuple] | None = None,
             on_change: Callable[[int], None] | None = None, queue: bool | None = None,
             chunks: bool = True) -> Iterator[Finished]:
    """Run ``tasks`` on ``client``'s cluster and yield each as it finishes.  A sized iterable
    (:class:`Pending`) is drawn from as tasks are sent; anything else is read at once.

    ``depends(task)``: extra arguments (Dask futures, e.g. a model shipped once) appended to
    the task's own.  ``on_change(running)`` is called whenever the number of tasks running
    may have changed (progress displays).  ``queue``: use the scheduler's queue (default:
    when the scheduler allows it); ``chunks``: send short tasks together (see the module's
    docstring).  Tasks not yet finished when the caller stops iterating are cancelled.
    """
    return _Dispatch(client, tasks, retries, depends, on_change, queue, chunks).run()


class _Dispatch:
    """The state of one :func:`dispatch`: tasks waiting, Dask tasks in flight, starts seen."""

    def __init__(self, client, tasks, retries, depends, on_change, queue, chunks):
        from distributed import as_completed

        self.client, self.retries, self.depends, self.on_change = client, retries, depends, on_change
        self.waiting = _Waiting(tasks)
        self.alone: collections.deque[Task] = collections.deque()  # tasks of a split chunk: never chunked again
        self.in_flight: dict[str, list[Task]] = {}
        self.starts: collections.Counter = collections.Counter()
        self.seconds: collections.deque[float] = collections.deque(maxlen=64)
        self.threads = _Threads(client)
        self.pending = as_completed(with_results=True, raise_errors=False)  # fetched at once: a worker's death
        # cannot take a finished result with it (Dask would run its task again)
        self.chunks = chunks
        big = len(self.waiting) >= queued_window(self.threads())
        self.queued = big and (queue if queue is not None else scheduler_queues(client))

    def run(self) -> Iterator[Finished]:
        self.client.subscribe_topic(EVENT_TOPIC, self._on_event)
        try:
            self._top_up()
            for future, result in self.pending:
                members = self.in_flight.pop(future.key)
                done = self._finished(members, future, result)
                future.release()
                self._top_up()  # the next tasks first: the caller's work on these results overlaps them
                yield from done
        finally:
            left = list(getattr(self.pending, "futures", ()))
            if left:
                self.client.cancel(left)
            self.client.unsubscribe_topic(EVENT_TOPIC)

    def _on_event(self, event) -> None:
        _, msg = event
        if isinstance(msg, dict) and isinstance(msg.get("jobs"), (list, tuple)):
            self.starts.update(msg["jobs"])

    def _top_up(self) -> None:
        threads = self.threads()
        batch = self._take((queued_window(threads) if self.queued else threads) - len(self.in_flight), threads)
        if self.queued and len(self.in_flight) + len(batch) <= 2 * threads:
            # the batch's end: too few tasks left to be queued as root tasks, which would then go straight
            # to (possibly busy) workers; send only as many as there are free threads
            keep = max(0, threads - len(self.in_flight))
            for chunk, alone in reversed(batch[keep:]):
                (self.alone if alone else self.waiting).extendleft(reversed(chunk))
            batch = batch[:keep]
        if batch:
            keys = [f"{KEY_PREFIX}-{uuid.uuid4().hex}" for _ in batch]
            members = [[(t.key, t.function, t.args + (self.depends(t) if self.depends else ())) for t in chunk]
                       for chunk, _ in batch]
            futures = self.client.map(run_tasks, members, key=keys, pure=False, retries=self.retries)
            for (chunk, _), future in zip(batch, futures):  # one message: a window big enough is queued
                self.in_flight[future.key] = chunk
                self.pending.add(future)
        if self.on_change:
            self.on_change(min(sum(map(len, self.in_flight.values())), threads))

    def _take(self, room: int, threads: int) -> list[tuple[list[Task], bool]]:
        """Up to ``room`` Dask tasks' worth of waiting tasks: ``(tasks, from a split chunk)``."""
        batch = []
        median = statistics.median(self.seconds) if self.chunks and self.seconds else None
        while room > 0 and (self.alone or self.waiting):
            if self.alone:
                batch.append(([self.alone.popleft()], True))
            else:
                n = min(chunk_size(median, len(self.waiting), threads), len(self.waiting))
                batch.append(([self.waiting.popleft() for _ in range(n)], False))
            room -= 1
        return batch

    def _finished(self, members: list[Task], future, result) -> list[Finished]:
        if future.status == "finished":
            out = []
            for task, ran in zip(members, result):
                self.seconds.append(ran.seconds)
                attempts = max(1, self.starts.pop(task.key, 0))
                out.append(Finished(task.key, ran.value, ran.error, attempts))
            return out
        if len(members) > 1 and future.status != "cancelled":  # a chunk that killed workers: each task alone
            self.alone.extend(members)
            return []
        return [_failed(task.key, future, max(1, self.starts.pop(task.key, 0))) for task in members]


def _failed(key: str, future, attempts: int) -> Finished:
    if future.status == "cancelled":
        return Finished(key, failure="cancelled (the cluster lost it)", attempts=attempts)
    exc = future.exception()
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        n = exc.allowed_failures + 1
        return Finished(key, failure=f"killed its worker {n} times (memory past the worker's limit or a crash "
                                     f"outside the isolated solve)", attempts=max(n, attempts))
    return Finished(key, failure=f"{type(exc).__name__}: {exc}", attempts=attempts)


def queued_window(threads: int) -> int:
    """Dask tasks kept submitted in queue mode: Dask queues a task as a root task only while
    its group (the tasks sharing a key prefix) has more than twice the cluster's threads."""
    return 3 * threads + 2


def scheduler_queues(client) -> bool:
    """Whether the scheduler hands each worker at most one root task per thread
    (``worker-saturation`` <= 1.0; Dask's default 1.1 gives a one-thread worker two)."""
    try:
        saturation = client.run_on_scheduler(_saturation)
    except Exception:  # a scheduler that refuses to run code: use the submitter's flow control
        return False
    return saturation <= 1.0


def _saturation(dask_scheduler=None) -> float:
    return float(getattr(dask_scheduler, "WORKER_SATURATION", float("inf")))


class _Threads:
    """The cluster's worker threads, asked of the scheduler at most once a second."""

    def __init__(self, client):
        self.client, self.value, self.at = client, 1, 0.0

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self.at > 1.0:
            self.value, self.at = max(1, sum(self.client.nthreads().values())), now
        return self.value
