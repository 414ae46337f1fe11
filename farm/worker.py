"""What runs on a Dask worker: one job through the pipeline, and the models it is sent.

A task carries its request with the input's bytes (an image file is sent as
:class:`~smug.pipeline.request.ImageBytes` labelled with its path, so workers need no
shared file system and the answer names the same input).  A user's ONNX file travels
once per batch as a :class:`ModelBundle` scattered to every worker (by content hash,
Dask's own data transfer); a worker writes it into ``$SMUG_CACHE/farm-models/<sha256>/``
under its own file name, once, and from there the pipeline's model cache
(``load_model``, per process) loads it once per worker.  Zoo models are loaded by name.

Everything the pipeline refuses or cannot do becomes a failed outcome with its reason
(the solve itself is isolated in a child process by the pipeline: a crash, memory cap or
timeout there is an ``unknown`` or ``feasible`` answer, not a failure).  Only a job that
takes the whole worker down (memory past the nanny's limit, a crash outside the solve)
is Dask's business: it retries the job elsewhere.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from smug.common import cache_dir, write_atomic
from smug.farm.dispatch import worker_address
from smug.pipeline import Deadline, ExplainRequest
from smug.pipeline.request import ImageBytes, ImageFile

DAEMON_HINT = ("the Dask worker is a daemon process, which may not start the pipeline's isolated solve: "
               "start workers with DASK_DISTRIBUTED__WORKER__DAEMON=False")


@dataclass(frozen=True)
class ModelBundle:
    """A user's ONNX file (and its tokenizer ``.json``, for a text model) by content hash."""

    sha256: str
    files: dict = field(repr=False)  # file name -> bytes; the .onnx first

    @classmethod
    def of(cls, path: str | os.PathLike, sha256: str) -> "ModelBundle":
        path = Path(path)
        files = {path.name: path.read_bytes()}
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            files[sidecar.name] = sidecar.read_bytes()
        return cls(sha256, files)

    def materialise(self) -> str:
        """The model's path on this machine (written on first use)."""
        folder = cache_dir() / "farm-models" / self.sha256
        for name, data in self.files.items():
            if not (folder / name).is_file():
                write_atomic(folder / name, data)
        return str(folder / next(iter(self.files)))


@dataclass(frozen=True)
class WorkerJob:
    """One job as sent to a worker (the Dask task that carries it is a :class:`smug.farm.dispatch.Task`)."""

    job_id: str
    request: ExplainRequest
    job_timeout: float | None = None  # seconds from the task's start (the pipeline's Deadline)

    @classmethod
    def of(cls, job_id: str, request: ExplainRequest, job_timeout: float | None) -> "WorkerJob":
        """A job whose image file travels as bytes (labelled with the path)."""
        src = request.input
        if isinstance(src, ImageFile):
            request = replace(request, input=ImageBytes(Path(src.path).read_bytes(), label=src.path))
        return cls(job_id, request, job_timeout)


@dataclass(frozen=True)
class Outcome:
    """What a worker sends back: the answer (JSON and packed arrays) or why there is none."""

    ok: bool
    result: dict | None = None
    arrays: bytes | None = None
    reason: str | None = None
    seconds: float = 0.0
    worker: str = ""


def execute(task: WorkerJob, bundle: ModelBundle | None = None) -> Outcome:
    """Run one job on this worker (the function Dask calls)."""
    from smug.farm.store import pack_arrays
    from smug.pipeline import run  # the model libraries: loaded on workers only

    t0 = time.perf_counter()
    worker = worker_address()
    try:
        if multiprocessing.current_process().daemon:
            return Outcome(False, reason=DAEMON_HINT, worker=worker)
        request = task.request
        if bundle is not None:
            request = replace(request, model=bundle.materialise())
        deadline = Deadline.after(task.job_timeout) if task.job_timeout else None
        e = run(request, deadline=deadline)
        doc = e.to_json()
        doc["request"] = {**doc["request"], "model": task.request.model}  # the name the user gave, not the cache path
        arrays = None if e.image is None else pack_arrays({k: getattr(e.image, k) for k in e.image.ARRAYS})
        return Outcome(True, doc, arrays, seconds=time.perf_counter() - t0, worker=worker)
    except MemoryError:
        raise  # the worker is short of memory: let Dask retry the job (elsewhere)
    except Exception as exc:  # the pipeline's refusals and errors: a failed job, never a stopped batch
        return Outcome(False, reason=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0, worker=worker)


def noop(task: WorkerJob, bundle: ModelBundle | None = None) -> Outcome:
    """A job that does nothing but arrive (its input's bytes included) and answer: what the farm
    itself costs per job (``smug.farm.run(..., work=noop)``, ``bench/farm.py --noop``)."""
    return Outcome(True, {"status": "noop"}, worker=worker_address())


def worker_facts() -> dict:
    """What the client checks on each worker before a batch (``client.run``)."""
    from smug.farm.jobs import smug_version

    return {"smug": smug_version(), "daemon": multiprocessing.current_process().daemon, "pid": os.getpid()}
