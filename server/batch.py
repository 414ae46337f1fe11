"""Batches for gRPC clients on the farm: the service is the farm's client (:func:`smug.farm.run`).

``SubmitBatch`` hands the validated requests to :meth:`Batches.submit`: their jobs are
recorded as pending in the batch's own farm store (``<store>/batches/<batch id>.sqlite``,
the same SQLite rows ``smug farm`` writes) and the batch joins a queue that one runner
thread works through, a batch at a time, on a Dask cluster started on first use (an
embedded ``LocalCluster`` of ``farm_workers``, or ``farm_scheduler``'s cluster).
``WatchBatch`` reads the store: every finished job (from the start, on every call, so a
watcher may reconnect) and the counts, until no job is pending.

Jobs are requests by identity (:func:`smug.pipeline.identity.identity`, the farm's job id):
repeated requests in a batch are one job, answered at each of their positions.  A batch's
results live in a store named by the *set* of its job ids, so the same requests (in any
order) share one store: resubmitting them after a server restart resumes it (finished jobs
are kept, never run twice) and resubmitting a batch that is queued or running runs nothing
again.  A batch's id hashes its job ids *in order*, and ``<id>.json`` beside the stores
keeps that submission's positions of each job, so a watcher's ``items`` always point at
the inputs of the submission that returned the id, whatever order an earlier one used.
It also keeps the names the client used for its models, so that answers name them, never
the server's paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from smug.common import write_atomic
from smug.farm import Store, job_of, run
from smug.pipeline import Explanation, ExplainRequest

log = logging.getLogger("smug.server")
POLL_S = 0.2  # how often a watcher looks for newly finished jobs


@dataclass(frozen=True)
class Shown:
    """How a job's model is named in answers: the client's name, the registry id, zoo or upload."""

    name: str
    model_id: str
    zoo: bool


@dataclass(frozen=True)
class Submitted:
    batch_id: str
    jobs: int
    done: int
    pending: int


@dataclass(frozen=True)
class Finished:
    """One finished job as a watcher sees it."""

    job_id: str
    items: tuple[int, ...]
    state: str
    reason: str | None
    attempts: int
    explanation: Explanation | None
    shown: Shown


@dataclass(frozen=True)
class Counts:
    jobs: int
    done: int
    failed: int
    pending: int
    running: bool


class Batches:
    """The server's batches: their stores, the queue, the runner thread and the Dask client."""

    def __init__(self, folder: Path, workers: int | None = None, scheduler: str | None = None,
                 job_timeout_cap: float | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.workers, self.scheduler, self.cap = workers, scheduler, job_timeout_cap
        self._queue: queue.Queue = queue.Queue()
        self._active: set[str] = set()  # queued or running
        self._lock = threading.Lock()
        self._cluster = None
        self._client = None
        self._settings = contextlib.ExitStack()  # the embedded cluster's Dask settings, for its whole life
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._runner, daemon=True, name="smug-batches")
        self._thread.start()

    # ---- submitting ------------------------------------------------------------------------
    def submit(self, requests: list[ExplainRequest], shown: list[Shown], job_timeout: float | None = None,
               retries: int = 2) -> Submitted:
        jobs = [job_of(r) for r in requests]
        batch_id = _digest([j.id for j in jobs])  # this submission, positions included
        results = _digest(sorted({j.id for j in jobs}))  # its jobs as a set: the store every order shares
        items: dict[str, list[int]] = {}
        names: dict[str, dict] = {}
        for i, (job, name) in enumerate(zip(jobs, shown)):
            items.setdefault(job.id, []).append(i)
            names[job.id] = {"name": name.name, "model_id": name.model_id, "zoo": name.zoo}
        with self._lock:
            if not self._meta_path(batch_id).is_file():
                meta = {"items": items, "shown": names, "store": results}
                write_atomic(self._meta_path(batch_id), json.dumps(meta).encode())
            with Store(self._store_path(results)) as store:
                store.add(jobs)
                done = len(set(items)) - len(store.todo(items, retry_failed=True))
            unique = {j.id: j for j in jobs}
            if results not in self._active and done < len(unique):
                self._active.add(results)
                self._queue.put((results, list(unique.values()), job_timeout, retries))
        return Submitted(batch_id, len(unique), done, len(unique) - done)

    # ---- watching ----------------------------------------------------------------------------
    def exists(self, batch_id: str) -> bool:
        return len(batch_id) == 32 and batch_id.isalnum() and self._meta_path(batch_id).is_file()

    def watch(self, batch_id: str, ended: Callable[[], bool]) -> Iterator[Finished | Counts]:
        """Every finished job of the batch (already finished ones first) and the counts after each;
        ends when none is pending, when the batch is not running any more, or when ``ended()``."""
        meta = json.loads(self._meta_path(batch_id).read_bytes())
        items, shown = meta["items"], {k: Shown(**v) for k, v in meta["shown"].items()}
        results = meta.get("store", batch_id)  # batches of an older server: the store has the batch's id
        sent: set[str] = set()
        since = 0.0  # only jobs finished since the last look are read again
        with Store(self._store_path(results), create=False) as store:
            while not ended():
                running = results in self._active
                c = store.counts()  # before the rows: every job these counts call finished is among them
                new = [r for r in store.finished_since(since) if r["id"] not in sent]
                since = max([since, *(r["finished"] for r in new)])
                for row in new:
                    sent.add(row["id"])
                    e = store.explanation(row["id"]) if row["state"] == "done" else None
                    yield Finished(row["id"], tuple(items.get(row["id"], ())), row["state"], row["reason"],
                                   int(row["attempts"] or 0), e, shown[row["id"]])
                counts = Counts(c["total"], c["done"], c["failed"], c["pending"], running)
                if new:
                    yield counts
                if c["pending"] == 0 or not running:
                    if not new:
                        yield counts
                    return
                time.sleep(POLL_S)

    # ---- running -----------------------------------------------------------------------------
    def _runner(self) -> None:
        while not self._stopped.is_set():
            try:
                results, jobs, job_timeout, retries = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                timeout = job_timeout if self.cap is None else min(job_timeout or self.cap, self.cap)
                for _ in run(jobs, store=self._store_path(results), client=self._dask(), job_timeout=timeout,
                             retries=retries):
                    if self._stopped.is_set():
                        break
            except Exception:  # a broken cluster: the batch stays resumable (its pending rows)
                log.exception("batch store %s stopped", results)
            finally:
                with self._lock:
                    self._active.discard(results)

    def _dask(self):
        if self._client is None:
            from distributed import Client

            from smug.farm import cluster

            if self.scheduler:
                self._client = Client(self.scheduler)
            else:
                self._settings.enter_context(cluster.settings(2))
                self._cluster = cluster.embedded(self.workers or 1)  # loopback only, no dashboard
                self._client = Client(self._cluster)
        return self._client

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        for thing in (self._client, self._cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing on shutdown: nothing left to save
                    pass
        self._settings.close()

    def _store_path(self, results: str) -> Path:
        return self.folder / f"{results}.sqlite"

    def _meta_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.json"


def _digest(ids: list[str]) -> str:
    """32 hex digits naming a list of job ids (a batch's id, or its store's)."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]
