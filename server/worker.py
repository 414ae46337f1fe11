"""The solver worker process: one job at a time from a pipe, events and the result back.

Workers are started with ``spawn`` (never ``fork`` from the threaded gRPC process) by
:class:`smug.server.pool.WorkerPool`.  They call the library in-process
(:func:`smug.clients.api.explain` / :func:`~smug.clients.api.explain_network` with a
``solver`` hook): the hook turns the request's deadline into the solver timeout
(deadline minus a margin, so the best mask found so far comes back in time as
``feasible``) and forwards every improved mask as a progress event.

Messages, parent -> worker: ``(kind, payload)`` or ``None`` (exit); worker -> parent:
``("event", dict)``, ``("result", object)`` or ``("error", code, message)``.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from dataclasses import replace
from typing import Callable

Emit = Callable[[dict], None]
NETWORK_OPS = {"Gemm", "MatMul", "Add", "Conv", "Pad", "BatchNormalization", "Relu", "Flatten", "Reshape",
               "Identity", "Dropout", "Constant", "Shape", "Gather", "Unsqueeze", "Concat"}


class DeadlineExceeded(Exception):
    pass


def _stage(emit: Emit, stage: str, state: str, **extra) -> None:
    emit({"event": "stage", "stage": stage, "state": state, "t": time.time(), **extra})


class _Retire:
    """Set when a solver thread overran its timeout and still runs: after this job the
    worker asks to be replaced (a z3 check does not always stop at its timeout)."""

    flag = False


def _solver(emit: Emit, deadline: float | None, margin: float) -> Callable:
    """``solver(fn, problem, backend, timeout)`` for the API: deadline-capped, with progress.

    The solve runs in a thread held to its timeout (plus ``OVERRUN_S``): past that, the
    best mask it reported is certified here and returned as ``feasible``, and the worker
    retires after the job (the stuck thread dies with it).  A solve that has reported no
    mask yet is waited for (the pool's deadline + grace still applies)."""

    def run(fn, problem, backend: str, timeout: float):
        if deadline is not None:
            timeout = min(timeout, deadline - margin - time.time())
            if timeout <= 0:
                raise DeadlineExceeded("the deadline passed before the solver could start (encoding took the time)")
        _stage(emit, "encode", "finished")
        _stage(emit, "solve", "started", timeout=timeout)
        if backend == "portfolio":  # races backends in child processes of this worker (hard deadline there)
            from smug.solver.portfolio import run_portfolio
            from smug.solver.solve import solve

            sol = run_portfolio(fn, problem, ("highs", "z3") if fn is solve else ("highs", "enum", "z3"), timeout)
        else:
            sol = _held_to_timeout(fn, problem, backend, timeout, emit)
        _stage(emit, "solve", "finished")
        return sol

    return run


OVERRUN_S = 0.5  # past the solver timeout, before the best reported mask is taken instead


def _held_to_timeout(fn, problem, backend: str, timeout: float, emit: Emit):
    import threading

    last: dict = {}
    out: dict = {}
    done = threading.Event()

    def progress(ev: dict) -> None:
        if not done.is_set():
            last.update(ev)
            emit({**ev, "t": time.time()})

    def target() -> None:
        try:
            out["sol"] = fn(problem, backend=backend, timeout=timeout, progress=progress)
        except BaseException as exc:  # re-raised in the job's thread
            out["error"] = exc

    t0 = time.perf_counter()
    thread = threading.Thread(target=target, daemon=True, name="smug-solve")
    thread.start()
    thread.join(timeout + OVERRUN_S)
    if thread.is_alive() and last.get("mask") is None:  # nothing to answer with yet: wait (the pool's
        thread.join()  # hard limit still kills a worker that never comes back)
    done.set()
    if not thread.is_alive():
        if "error" in out:
            raise out["error"]
        return out["sol"]
    _Retire.flag = True
    return _best_reported(fn, problem, backend, last, time.perf_counter() - t0)


def _best_reported(fn, problem, backend: str, last: dict, elapsed: float):
    """The overrunning solve's best reported mask, certified exactly, as ``feasible``
    (``unknown`` if it reported none)."""
    from smug.ir import MaskProblem
    from smug.solver.certificate import certify, certify_network
    from smug.solver.solve import Solution

    timings = {"overrun_after": round(elapsed, 4)}
    mask = last.get("mask")
    if mask is None:
        return Solution("unknown", None, None, int(last.get("lower_bound", 0)), backend,
                        "the solver overran its timeout before reporting a mask", None, 0, timings)
    cert = (certify if isinstance(problem, MaskProblem) else certify_network)(problem, mask)
    if not cert.valid:  # cannot happen: every reported mask passed the exact check
        return Solution("unknown", None, None, 0, backend, "the reported mask failed the exact check", cert, 0,
                        timings)
    return Solution("feasible", mask, int(mask.sum()), int(last.get("lower_bound", 0)), backend,
                    "the solver overran its timeout: best verified mask it reported, and its proven lower bound",
                    cert, 0, timings)


def _source(job: dict, tmp: str):
    kind, value = job["input"]
    if kind == "tensor":
        return value
    if kind == "image":
        path = os.path.join(tmp, "input-image")
        with open(path, "wb") as f:
            f.write(value)
        return path
    return None  # the model's demo input


def explain_job(job: dict, emit: Emit):
    """An :class:`~smug.clients.result.Explanation` (without the display image's copy in the config)."""
    from smug.clients.api import explain, explain_network

    _stage(emit, "encode", "started")
    solver = _solver(emit, job.get("deadline"), job.get("margin", 0.0))
    with tempfile.TemporaryDirectory(prefix="smug-worker-") as tmp:
        source = _source(job, tmp)
        fn = explain_network if job["method"] == "whole-network" else explain
        result = fn(source, model=job["model"], solver=solver, **job["kwargs"])
    if job["input"][0] == "image":
        result = replace(result, input="uploaded image")
    return result


def dump_job(job: dict, emit: Emit) -> dict:
    from smug.clients.api import encode
    from smug.encoders.smug import SmugConfig
    from smug.solver.smtlib import to_smtlib

    kw = dict(job["kwargs"])
    target = kw.pop("target", None)
    with tempfile.TemporaryDirectory(prefix="smug-worker-") as tmp:
        enc, ctx = encode(_source(job, tmp), job["model"], SmugConfig(**kw), target)
    header = [f"smug dump: model {ctx['model'].name}, input {job['input'][0]}, target class {enc.target}",
              ", ".join(f"{k} {v}" for k, v in kw.items())]
    return {"smtlib": to_smtlib(enc.problem, header), "constraints": int(enc.problem.n_constraints)}


def inspect_job(job: dict, emit: Emit) -> dict:
    """Facts about a model file (or zoo entry): input shape, classes, what smug can encode.
    Uploads are run once through onnxruntime and their first layer extracted; zoo entries
    are trusted (their declared output shape gives the classes).  Raises
    :class:`~smug.models.runtime.ModelError` for unusable ONNX."""
    import hashlib

    from smug.models.runtime import OnnxModel
    from smug.models.zoo import ZOO

    zoo = bool(job.get("zoo"))
    kind = "image"
    if zoo:
        entry = ZOO[job["source"]]
        kind = getattr(entry, "kind", "image")
        path = entry.onnx_path()
        model = OnnxModel.load(path, name=entry.name)
    else:
        path = job["source"]
        model = OnnxModel.load(path)
    classes = _declared_classes(model) if zoo else None
    if kind == "text":  # token ids in, one rating out (smug.clients.text checks the rest)
        classes = 1
    elif classes is None:
        classes = _check_upload(model)
    # whole-network encoding: every op one that smug.encoders.network reads (a cheap
    # structural test; the encoder itself names any remaining problem at explain time)
    whole = kind == "image" and {n.op_type for n in model.proto.graph.node} <= NETWORK_OPS
    with open(path, "rb") as f:
        data = f.read()
    return {"id": hashlib.sha256(data).hexdigest(), "input_shape": list(model.input_shape), "n_classes": classes,
            "size_bytes": len(data), "whole_network": whole, "kind": kind}


def _declared_classes(model) -> int | None:
    dims = model.proto.graph.output[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value) if len(dims) == 2 and dims[1].HasField("dim_value") else None


def _check_upload(model) -> int:
    """Run the model once and extract its first layer; the number of classes."""
    import numpy as np

    from smug.encoders.first_layer import UnsupportedModel, find_first_layer
    from smug.models.runtime import ModelError

    try:
        logits = model.logits(np.zeros((1, *model.input_shape), np.float32))
    except ModelError:
        raise
    except Exception as exc:  # onnxruntime's own error types
        raise ModelError(f"onnxruntime cannot run the model: {exc}") from None
    if logits.ndim != 2:
        raise ModelError(f"the model output must be (batch, classes) logits, got shape {logits.shape}")
    try:
        find_first_layer(model)
    except UnsupportedModel as exc:
        raise ModelError(f"unsupported first layer: {exc}") from None
    return int(logits.shape[1])


def text_job(job: dict, emit: Emit):
    from smug.clients.text import explain_text

    _stage(emit, "encode", "started")
    kw = dict(job["kwargs"])
    if job.get("deadline") is not None:
        left = job["deadline"] - job.get("margin", 0.0) - time.time()
        if left <= 0:
            raise DeadlineExceeded("the deadline passed before the text explanation could start")
        kw["timeout"] = min(kw.get("timeout", 60.0), left)
    result = explain_text(job["text"], model=job["model"], methods=("smug", "smug_base"), **kw)
    _stage(emit, "encode", "finished")
    return result


JOBS: dict[str, Callable] = {"explain": explain_job, "dump": dump_job, "inspect": inspect_job, "text": text_job}


def _error(exc: BaseException) -> tuple[str, str, str]:
    from smug.models.preprocess import InputError
    from smug.models.runtime import ModelError

    if isinstance(exc, DeadlineExceeded):
        return "error", "DEADLINE_EXCEEDED", str(exc)
    if isinstance(exc, MemoryError):
        return "error", "RESOURCE_EXHAUSTED", "the worker ran out of memory"
    if isinstance(exc, (InputError, ModelError, ValueError)):
        return "error", "INVALID_ARGUMENT", str(exc)
    return "error", "INTERNAL", f"{type(exc).__name__}: {exc}"


def worker_main(conn, threads: int = 1, preload: tuple[str, ...] = ()) -> None:
    """Entry point of a worker process (spawned)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the server decides
    for var in ("SMUG_TORCH_THREADS", "OMP_NUM_THREADS", "SMUG_ORT_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    import smug.clients.api  # noqa: F401  (warm: numpy, onnx, onnxruntime, solver)
    import smug.solver.z3_backend  # noqa: F401

    if preload:
        from smug.models.zoo import load_model

        for name in preload:
            load_model(name)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        kind, job = msg
        lock = threading.Lock()  # a solver thread may still report while the job answers

        def emit(ev: dict) -> None:
            with lock:
                conn.send(("event", ev))

        try:
            out = ("result", JOBS[kind](job, emit), _Retire.flag)
        except BaseException as exc:  # everything goes back to the parent, which decides
            out = _error(exc)
        with lock:
            conn.send(out)
