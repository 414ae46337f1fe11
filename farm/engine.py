"""``smug.farm.run``: submit jobs to Dask, stream results back as they finish, record each once.

The submission loop (flow control, attempts, worker deaths) is :mod:`smug.farm.dispatch`;
this module turns requests into its tasks and its results into store records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from smug.farm import cluster, dispatch
from smug.farm.jobs import Job, job_of
from smug.farm.spool import Spool
from smug.farm.store import Record, Store
from smug.farm.worker import ModelBundle, Outcome, WorkerJob, execute, worker_facts
from smug.pipeline import ExplainRequest
from smug.pipeline.request import zoo_kind


# Dask keeps the last ``distributed.admin.low-level-log-length`` messages of each connection (default 1000), a
# compute-task message with its task's inputs included: 1000 per worker of no-op jobs' messages grew the submitting
# process by 8.9 MB per 10k jobs up to 100,000 (bench/farm.py --noop).  Connections made by a run keep a few.
LOG_KEY, LOG_LENGTH = "distributed.admin.low-level-log-length", 16


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
    attempts: int  # starts of the Dask tasks that carried it (smug.farm.dispatch)
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
        progress: Callable[[BatchState], None] | None = None, dashboard: str | None = None,
        work: Callable[..., Outcome] = execute) -> Iterator[JobResult]:
    """Run ``requests`` on Dask and yield each result as it finishes (also written into ``store``).

    ``client``: a ``distributed.Client`` of your own; else ``scheduler`` (``tcp://HOST:8786``);
    else an embedded LocalCluster of ``workers`` process workers (default: one per core,
    one thread each, ``memory_limit`` each).  Jobs already finished in ``store`` are
    skipped (failed ones re-run with ``retry_failed``).  ``job_timeout`` caps each job's
    wall time from its start (the pipeline's :class:`~smug.pipeline.Deadline`); ``retries``
    is how often a job that kills its worker is re-run before it is recorded as failed
    (the embedded cluster's ``allowed-failures``; a real cluster's scheduler has its own).
    The embedded cluster listens on loopback only and serves Dask's dashboard only at
    ``dashboard`` (an address such as ``127.0.0.1:8787``; none by default).  ``work``: what a
    worker runs per job, :func:`~smug.farm.worker.execute` (the pipeline), or
    :func:`~smug.farm.worker.noop` to measure the farm alone.

    ``requests`` are kept on disk (a :class:`~smug.farm.spool.Spool`, as a manifest's jobs
    already are; the first of each id), recorded in the store a chunk at a time and sent as
    workers free up, so a batch of any length holds only the jobs in flight in memory.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if job_timeout is not None and not job_timeout > 0:
        raise ValueError(f"job_timeout must be positive, got {job_timeout}")
    own, spooled = not isinstance(store, Store), isinstance(requests, Spool)
    db = Store(store) if own else store
    jobs = requests if spooled else Spool()
    try:
        for r in () if spooled else requests:
            jobs.add(job_of(r))
        todo = _recorded(db, jobs, retry_failed)
        skipped = len(jobs) - todo
        if not todo:
            if progress:
                progress(BatchState(0, 0, 0, 0, skipped))
            return
        import dask

        with dask.config.set({LOG_KEY: LOG_LENGTH}), \
                cluster.connect(client, workers, scheduler, retries, memory_limit, dashboard) as c:
            yield from _Batch(c, db, jobs, todo, retry_failed, job_timeout, retries, skipped, progress, work).results()
    finally:
        if own:
            db.close()
        if not spooled:
            jobs.close()


def _recorded(store: Store, jobs: Spool, retry_failed: bool) -> int:
    """Record ``jobs`` in ``store`` as pending (a transaction per chunk of the spool); how many need running."""
    todo = 0
    for chunk in jobs.chunks():
        store.add(chunk)
        todo += len(store.todo([j.id for j in chunk], retry_failed))
    return todo


class _Batch:
    """One run's tasks (a job each, plus a user's model shipped once) through :func:`~smug.farm.dispatch.dispatch`:
    read from the spool a chunk at a time, filtered by the store, a job held only from its sending to its result."""

    def __init__(self, client, store: Store, jobs: Spool, todo: int, retry_failed: bool, job_timeout: float | None,
                 retries: int, skipped: int, progress: Callable[[BatchState], None] | None, work: Callable):
        self.client, self.store, self.job_timeout, self.retries = client, store, job_timeout, retries
        self.spool, self.retry_failed, self.work = jobs, retry_failed, work
        self.jobs: dict[str, Job] = {}  # the jobs sent and not finished, by task key
        self.counts = {"done": 0, "failed": 0}
        self.running = 0
        self.total, self.skipped, self.progress = todo, skipped, progress
        self.bundles: dict[str, object] = {}

    def results(self) -> Iterator[JobResult]:
        self._check_workers()
        tasks = dispatch.Pending(self._todo(), self._task, self.total)  # an image's bytes are read as it goes out
        for finished in dispatch.dispatch(self.client, tasks, self.retries, depends=self._bundle,
                                          on_change=self._running):
            job = self.jobs.pop(finished.key)
            record = _record(job, finished)
            self.store.finish(record)
            self.counts[record.state] += 1
            self._report()
            yield _result(job, record)

    def _todo(self) -> Iterator[Job]:
        """The spool's jobs that the store still has to run, in order."""
        for chunk in self.spool.chunks():
            todo = self.store.todo([j.id for j in chunk], self.retry_failed)
            yield from (j for j in chunk if j.id in todo)

    def _task(self, job: Job) -> dispatch.Task:
        key = job_key(job.id)
        self.jobs[key] = job
        return dispatch.Task(key, self.work, (WorkerJob.of(job.id, job.request, self.job_timeout),))

    def _running(self, n: int) -> None:
        self.running = n
        self._report()

    def _bundle(self, task: dispatch.Task) -> tuple:
        """A user's ONNX file as a Dask task result (nothing for zoo models): sent to the scheduler once per
        batch, fetched by each worker from a peer once, and recomputed by Dask if every copy dies with
        its workers (scattered data would be lost then)."""
        model = self.jobs[task.key].request.model
        if zoo_kind(model) is not None:
            return ()
        if model not in self.bundles:
            from smug.farm.jobs import file_sha256

            bundle = ModelBundle.of(model, file_sha256(model))
            self.bundles[model] = self.client.submit(_same, bundle, key=f"smug-model-{bundle.sha256}", pure=False,
                                                     retries=self.retries)
        return (self.bundles[model],)

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

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(BatchState(self.total, self.counts["done"], self.counts["failed"], self.running,
                                     self.skipped, cluster.dashboard(self.client)))


def job_key(job_id: str) -> str:
    """The Dask key of a job's task (also what it announces on :data:`~smug.farm.dispatch.EVENT_TOPIC`)."""
    return f"smug-farm-{job_id}"


def _record(job: Job, finished: dispatch.Finished) -> Record:
    if finished.failure is not None:
        return Record(job.id, "failed", reason=finished.failure, attempts=finished.attempts)
    out: Outcome = finished.value
    return Record(job.id, "done" if out.ok else "failed", out.result, out.arrays, out.reason, finished.attempts,
                  out.seconds, out.worker)


def _same(value):
    return value


def _result(job: Job, rec: Record) -> JobResult:
    r = rec.result or {}
    return JobResult(job.id, job.name, job.line, rec.state, r.get("status"), r.get("objective"), rec.reason,
                     rec.attempts, rec.seconds, rec.worker, rec.result)
