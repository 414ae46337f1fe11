"""``smug.farm.run``: submit jobs to Dask, stream results back as they finish, record each once.

Flow control: at most one job per worker thread is in flight (``as_completed``
topped up as results arrive), so the scheduler hands a worker its next job only when it
is free.  This also keeps a dying worker's blast radius to the job it was running: Dask
counts a worker's death against every job assigned to it, and a job queued behind a
poison job would otherwise fail with it.

Attempts: each task announces its start on the scheduler's event log (topic
``smug-farm``); the client counts them per job.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from smug.farm import cluster
from smug.farm.jobs import Job, job_of
from smug.farm.store import Record, Store
from smug.farm.worker import EVENT_TOPIC, ModelBundle, Outcome, Task, execute, worker_facts
from smug.pipeline import ExplainRequest
from smug.pipeline.request import zoo_kind


class FarmError(RuntimeError):
    """The batch cannot run on these workers (e.g. daemonic workers, another smug version)."""


@dataclass(frozen=True)
class JobResult:
    """One finished job, as recorded in the store."""

    job_id: str
    name: str | None
    line: int | None
    state: str  # done | failed
    status: str | None  # the explanation's status (optimal, feasible, ...) when done
    objective: int | None
    reason: str | None
    attempts: int
    seconds: float | None
    worker: str | None
    result: dict | None  # Explanation.to_json() when done


@dataclass(frozen=True)
class BatchState:
    """Counts for a progress display; ``dashboard`` is Dask's, when bokeh is installed."""

    total: int  # jobs of this run (skipped ones not counted)
    done: int
    failed: int
    running: int
    skipped: int  # already finished in the store
    dashboard: str | None = None


def run(requests: Iterable[ExplainRequest | Job], store: str | Path | Store, client=None, workers: int | None = None,
        scheduler: str | None = None, job_timeout: float | None = None, retries: int = 2,
        memory_limit: str | int | None = "auto", retry_failed: bool = False,
        progress: Callable[[BatchState], None] | None = None) -> Iterator[JobResult]:
    """Run ``requests`` on Dask and yield each result as it finishes (also written into ``store``).

    ``client``: a ``distributed.Client`` of your own; else ``scheduler`` (``tcp://HOST:8786``);
    else an embedded LocalCluster of ``workers`` process workers (default: one per core,
    one thread each, ``memory_limit`` each).  Jobs already finished in ``store`` are
    skipped (failed ones re-run with ``retry_failed``).  ``job_timeout`` caps each job's
    wall time from its start (the pipeline's :class:`~smug.pipeline.Deadline`); ``retries``
    is how often a job that kills its worker is re-run before it is recorded as failed
    (the embedded cluster's ``allowed-failures``; a real cluster's scheduler has its own).
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if job_timeout is not None and not job_timeout > 0:
        raise ValueError(f"job_timeout must be positive, got {job_timeout}")
    own = not isinstance(store, Store)
    db = Store(store) if own else store
    try:
        jobs = list({j.id: j for j in (job_of(r) for r in requests)}.values())
        db.add(jobs)
        todo = db.todo([j.id for j in jobs], retry_failed)
        batch = [j for j in jobs if j.id in todo]
        skipped = len(jobs) - len(batch)
        if not batch:
            if progress:
                progress(BatchState(0, 0, 0, 0, skipped))
            return
        with cluster.connect(client, workers, scheduler, retries, memory_limit) as c:
            yield from _Batch(c, db, batch, job_timeout, retries, skipped, progress).results()
    finally:
        if own:
            db.close()


class _Batch:
    """One run's submissions, in-flight futures and attempt counts."""

    def __init__(self, client, store: Store, jobs: list[Job], job_timeout: float | None, retries: int, skipped: int,
                 progress: Callable[[BatchState], None] | None):
        self.client, self.store, self.job_timeout, self.retries = client, store, job_timeout, retries
        self.waiting = collections.deque(jobs)
        self.by_key: dict[str, Job] = {}
        self.starts: collections.Counter = collections.Counter()
        self.counts = {"done": 0, "failed": 0}
        self.total, self.skipped, self.progress = len(jobs), skipped, progress
        self.bundles: dict[str, object] = {}
        self._threads, self._threads_at = 1, 0.0

    def results(self) -> Iterator[JobResult]:
        from distributed import as_completed

        self._check_workers()
        self.client.subscribe_topic(EVENT_TOPIC, self._on_event)
        pending = as_completed()
        try:
            self._top_up(pending)
            self._report()
            for future in pending:
                job = self.by_key.pop(future.key)
                record = self._record(job, future)
                future.release()
                self._top_up(pending)  # the next job first: the store write overlaps it
                self.store.finish(record)
                self.counts[record.state] += 1
                self._report()
                yield _result(job, record)
        finally:
            in_flight = [f for f in pending.futures] if hasattr(pending, "futures") else []
            if in_flight:
                self.client.cancel(in_flight)
            self.client.unsubscribe_topic(EVENT_TOPIC)

    # ---- submission ---------------------------------------------------------------
    def _top_up(self, pending) -> None:
        limit = max(1, self._worker_threads())
        while self.waiting and len(self.by_key) < limit:
            job = self.waiting.popleft()
            args = [Task.of(job.id, job.request, self.job_timeout)]
            bundle = self._bundle(job.request.model)
            if bundle is not None:
                args.append(bundle)
            future = self.client.submit(execute, *args, key=f"smug-farm-{job.id}", pure=False, retries=self.retries)
            self.by_key[future.key] = job
            pending.add(future)

    def _bundle(self, model: str):
        """A user's ONNX file as a Dask task result (None for zoo models): sent to the scheduler once per
        batch, fetched by each worker from a peer once, and recomputed by Dask if every copy dies with
        its workers (scattered data would be lost then)."""
        if zoo_kind(model) is not None:
            return None
        if model not in self.bundles:
            from smug.farm.jobs import file_sha256

            bundle = ModelBundle.of(model, file_sha256(model))
            self.bundles[model] = self.client.submit(_same, bundle, key=f"smug-model-{bundle.sha256}", pure=False,
                                                     retries=self.retries)
        return self.bundles[model]

    def _worker_threads(self) -> int:
        now = time.monotonic()
        if now - self._threads_at > 1.0:
            self._threads, self._threads_at = cluster.total_threads(self.client), now
        return self._threads

    def _check_workers(self) -> None:
        """Refuse daemonic workers (no isolated solve) and workers of another smug version (other job ids)."""
        from smug.farm.jobs import smug_version

        facts = self.client.run(worker_facts)
        daemons = [w for w, f in facts.items() if f["daemon"]]
        if daemons:
            from smug.farm.worker import DAEMON_HINT

            raise FarmError(f"{DAEMON_HINT} ({len(daemons)} of {len(facts)} workers are)")
        other = {w: f["smug"] for w, f in facts.items() if f["smug"] != smug_version()}
        if other:
            raise FarmError(f"workers run another smug version than this client ({smug_version()}): {other}")

    # ---- results -------------------------------------------------------------------
    def _on_event(self, event) -> None:
        _, msg = event
        if isinstance(msg, dict) and "job" in msg:
            self.starts[msg["job"]] += 1

    def _record(self, job: Job, future) -> Record:
        attempts = max(1, self.starts.pop(job.id, 0))
        if future.status == "finished":
            out: Outcome = future.result()
            return Record(job.id, "done" if out.ok else "failed", out.result, out.arrays, out.reason, attempts,
                          out.seconds, out.worker)
        if future.status == "cancelled":
            return Record(job.id, "failed", reason="cancelled (the cluster lost it)", attempts=attempts)
        exc = future.exception()
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            n = exc.allowed_failures + 1
            return Record(job.id, "failed", reason=f"killed its worker {n} times (memory past the worker's limit "
                                                   f"or a crash outside the isolated solve)", attempts=max(n, attempts))
        return Record(job.id, "failed", reason=f"{type(exc).__name__}: {exc}", attempts=attempts)

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(BatchState(self.total, self.counts["done"], self.counts["failed"], len(self.by_key),
                                     self.skipped, cluster.dashboard(self.client)))


def _same(value):
    return value


def _result(job: Job, rec: Record) -> JobResult:
    r = rec.result or {}
    return JobResult(job.id, job.name, job.line, rec.state, r.get("status"), r.get("objective"), rec.reason,
                     rec.attempts, rec.seconds, rec.worker, rec.result)
