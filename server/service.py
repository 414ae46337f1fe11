"""The ``smug.v1.Smug`` gRPC service: validation, admission, workers, one log line per request."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import replace

import grpc

from smug.proto import load
from smug.server.config import ServerConfig
from smug.deadline import Deadline
from smug.events import Event, Improved, Stage, WorkDone
from smug.pipeline import ExplainRequest, RequestError
from smug.pipeline.models import InputError, check_model_input
from smug.pipeline.request import WHOLE_NETWORK, ArrayInput, ImageBytes
from smug.proto.wire import (WireError, explanation_to_proto, input_of, model_info_to_proto, request_fields,
                             to_tensor)
from smug.server.errors import ServiceError, invalid, public, shown
from smug.server.pool import PoolJob, WorkerPool
from smug.server.registry import ModelRegistry
from smug.server.validation import check_image, check_model_ref

pb, pb_grpc = load()
log = logging.getLogger("smug.server")
MAX_IG_STEPS = 4096  # integrated-gradient steps a request may ask for (each is a forward and backward pass)
MAX_RETRIES = 10  # re-runs a batch may allow a job that kills its worker
DEADLINE_SLACK_S = 0.25  # an RPC that ended this close to its deadline ended by the deadline, not a cancel


class Call:
    """Per-request bookkeeping: id, deadline, cancellation, the log line."""

    def __init__(self, rpc: str, context, model: str = "", stopping: threading.Event | None = None):
        remaining = context.time_remaining()
        self.stopping = stopping  # set when the server stops: calls still open end by the server's hand
        self.t0 = time.time()
        self.deadline = Deadline() if remaining is None or remaining > 1e8 else Deadline(self.t0 + remaining)
        self.rpc, self.context = rpc, context
        meta = dict(context.invocation_metadata() or ())
        self.id = str(meta.get("x-request-id") or uuid.uuid4().hex[:16])[:64]
        self._done = threading.Event()
        context.add_callback(self._done.set)
        self.log = {"request_id": self.id, "rpc": rpc, "model": shown(model)[1:-1] if model else "",
                    "peer": context.peer()}
        self.finished = False
        context.set_trailing_metadata((("x-request-id", self.id),))

    def ended(self) -> bool:
        """The RPC is over on the client's side (cancelled, or its deadline passed)."""
        return self._done.is_set()

    def expired(self) -> bool:
        return self.deadline.minus(DEADLINE_SLACK_S).expired()

    def cancelled(self) -> bool:
        """The client cancelled (an expired deadline is not a cancellation: the worker gets its grace)."""
        if not self._done.is_set():
            return False
        remaining = self.context.time_remaining()
        return not self.expired() and (remaining is None or remaining > DEADLINE_SLACK_S)

    def finish(self, code: str = "OK", message: str = "", **facts) -> None:
        if self.finished:
            return
        self.finished = True
        if self.stopping is not None and self.stopping.is_set() and code != "OK":
            code, message = "UNAVAILABLE", "the server stopped (its shutdown grace ran out) before the answer"
            self.log["cancelled_by"] = "server"
        elif (self.ended() or (code == "CANCELLED" and self.expired())) and code in ("OK", "CANCELLED") \
                and not self.cancelled():  # gRPC's done-callback may come a moment after the stream ended
            code, message = "DEADLINE_EXCEEDED", message or "the client's deadline passed before the answer"
        self.log.update(facts)
        self.log.update(code=code, total_s=round(time.time() - self.t0, 4))
        if message:
            self.log["message"] = message[:1000]
        log.info(json.dumps(self.log, default=str))


class SmugService(pb_grpc.SmugServicer):
    def __init__(self, config: ServerConfig, pool: WorkerPool):
        self.config = config
        self.pool = pool
        self._slots = threading.BoundedSemaphore(config.workers + config.max_queue)
        self._streams = threading.BoundedSemaphore(config.max_streams)  # open SubmitBatch / WatchBatch streams
        self.registry = ModelRegistry(config.store_dir(), self._inspect)
        self.running: dict[str, dict] = {}  # request id -> job stats (queue_s, work_s, worker pid)
        self.draining = False  # set on shutdown: new work is refused, health says NOT_SERVING
        self.stopping = threading.Event()  # set when the drain's grace is over and open calls are cut
        self.batches = None  # smug.server.batch.Batches, started by the first SubmitBatch / WatchBatch
        self._batches_lock = threading.Lock()

    # ---- plumbing ----------------------------------------------------------
    def _inspect(self, payload: dict) -> dict:
        return self.pool.run(PoolJob("inspect", payload))

    def _inspect_upload(self, call: Call, payload: dict) -> dict:
        """An upload's inspection, bounded: stopped when the RPC ends (a cancel or its deadline: nobody
        waits for the answer) and after ``upload_timeout`` seconds."""
        job = PoolJob("inspect", payload, cancelled=call.ended,
                  deadline=Deadline.after(self.config.upload_timeout).earlier(call.deadline))
        self.running[call.id] = job.stats
        try:
            return self.pool.run(job)
        finally:
            self.running.pop(call.id, None)

    def _guard(self, call: Call, fn, done: bool = True):
        """Run ``fn()``; map failures to a gRPC status; log the request (on success only when ``done``)."""
        try:
            out = fn()
        except ServiceError as exc:
            message = public(exc.message)
            call.finish(exc.code, message)
            call.context.abort(getattr(grpc.StatusCode, exc.code), message)
        except Exception as exc:  # a bug: the log says what, the client only that it happened
            log.exception("request %s failed", call.id)
            call.finish("INTERNAL", f"{type(exc).__name__}: {exc}")
            call.context.abort(grpc.StatusCode.INTERNAL,
                               f"internal error (request {call.id}); the server log has the details")
        if done:
            call.finish("OK")
        return out

    def _admit(self, call: Call) -> None:
        self._check_deadline(call)
        if self.draining:
            raise ServiceError("UNAVAILABLE", "the server is shutting down; retry on another server")
        if not self._slots.acquire(blocking=False):
            n = self.config.workers + self.config.max_queue
            raise ServiceError("RESOURCE_EXHAUSTED",
                               f"server busy: {n} requests already running or queued; retry later")

    def _admit_stream(self) -> None:
        """A slot for a batch stream (SubmitBatch, WatchBatch), which holds a handler thread for as long
        as its client keeps it open: at most ``max_streams`` at once, others get RESOURCE_EXHAUSTED at once
        (and never take the threads that admitted requests, health checks and ListModels use)."""
        if not self._streams.acquire(blocking=False):
            raise ServiceError("RESOURCE_EXHAUSTED", f"server busy: {self.config.max_streams} batch streams "
                                                     "(SubmitBatch, WatchBatch) already open; retry later")

    def _check_deadline(self, call: Call) -> None:
        if call.deadline.remaining() <= self.config.deadline_margin:
            raise ServiceError("DEADLINE_EXCEEDED",
                               f"the deadline leaves {call.deadline.remaining():.3f} s, not more than "
                               f"the {self.config.deadline_margin} s the server keeps to answer; nothing was started")

    def _request(self, call: Call, request, kind: str):
        """The message decoded into a validated :class:`ExplainRequest` (the pipeline's checks, INVALID_ARGUMENT
        naming the fault), then this server's policy (:meth:`_check_policy`)."""
        check_model_ref(request.model)
        rec = self.registry.resolve(request.model)
        call.log["model"] = rec.aliases[0] if rec.aliases else rec.id
        which = request.WhichOneof("input")
        if (which == "text") != (rec.kind == "text") and (which is not None or rec.kind != "text"):
            raise invalid(f"model {shown(request.model)} is a text model: send text" if rec.kind == "text"
                          else "text input needs a text model such as 'text-cnn'")
        try:
            params = request_fields(pb, request)
            dump_options = {"format": params.pop("dump_format", "smt2"), "bound": params.pop("dump_bound", None)}
            if kind == "dump":
                params.pop("timeout", None)
                params.pop("backend", None)
            source, text = input_of(request)
            req = ExplainRequest.build(source, rec.source, text=text, **params)
        except (WireError, RequestError, InputError) as exc:
            raise invalid(str(exc)) from None
        self._check_policy(req, rec)
        return req, rec, dump_options

    def _check_policy(self, req: ExplainRequest, rec) -> None:
        """What this server allows beyond the pipeline's own checks: its caps (time, IG steps) and the
        registry's facts about the model (classes, input shape, a zoo preprocessing for encoded images,
        whether it can be encoded whole), checked before a worker is taken."""
        if not req.timeout <= self.config.max_timeout:
            raise invalid(f"timeout must lie in (0, {self.config.max_timeout}] seconds, got {req.timeout}")
        if req.target is not None and not req.target < rec.n_classes:
            raise invalid(f"target {req.target} is not one of the model's {rec.n_classes} classes")
        config = getattr(req.config, "smug", req.config)  # text options hold their SMUG config
        side = max(rec.input_shape[-2:]) if len(rec.input_shape) >= 2 else rec.input_shape[-1]
        window = getattr(config, "window", None)
        if window is not None and not window <= side:
            raise invalid(f"window must lie in [1, {side}], got {window}")
        ig_steps = getattr(config, "ig_steps", None)
        if ig_steps is not None and not ig_steps <= MAX_IG_STEPS:
            raise invalid(f"ig_steps must lie in [1, {MAX_IG_STEPS}] on this server, got {ig_steps}")
        if req.method == WHOLE_NETWORK and not rec.whole_network:
            raise invalid("this model cannot be encoded whole (see smug.encoders.network.SUPPORTED_OPS)")
        source = req.input
        if isinstance(source, ArrayInput):
            try:
                check_model_input(source.array, rec.input_shape)
            except InputError as exc:
                raise invalid(str(exc)) from None
        elif isinstance(source, ImageBytes) and not rec.zoo:
            raise invalid("encoded images need a zoo model (its preprocessing); send a tensor instead")
        elif isinstance(source, ImageBytes):
            check_image(source.data)
        elif not rec.zoo and rec.kind != "text":
            raise invalid("an input is required (tensor or image) for a model outside the zoo")

    def _job(self, call: Call, request, kind: str, on_event=lambda ev: None):
        """Validate ``request`` (an ExplainRequest message), then run it on a worker."""
        self._check_deadline(call)  # before anything else: resolving a model may itself run a worker
        req, rec, dump_options = self._request(call, request, kind)
        if kind == "dump" and req.problem_kind is None:
            raise invalid(f"the baseline {req.method!r} has no constraints to dump")
        self._admit(call)
        job = PoolJob(kind, {"request": req, **dump_options}, on_event=on_event, cancelled=call.cancelled,
                  deadline=call.deadline)
        self.running[call.id] = job.stats
        try:
            return self.pool.run(job), rec, job.stats
        finally:
            self.running.pop(call.id, None)
            self._slots.release()
            call.log.update(queue_s=round(job.stats.get("queue_s", 0.0), 4),
                            work_s=round(job.stats.get("work_s", 0.0), 4), worker=job.stats.get("pid"))

    def _response(self, call: Call, result, rec, stats):
        extra = {"queue": round(stats.get("queue_s", 0.0), 4), "server_total": round(time.time() - call.t0, 4)}
        r = explanation_to_proto(pb, _named(result, _model_name(rec), rec.zoo), call.id, rec.id, extra)
        call.log.update(status=r.status, objective=r.objective if r.HasField("objective") else None)
        return r

    # ---- RPCs --------------------------------------------------------------
    def RegisterModel(self, request, context):
        call = Call("RegisterModel", context, request.name, stopping=self.stopping)

        def body():
            if len(request.onnx) > self.config.max_upload_bytes:
                raise ServiceError("RESOURCE_EXHAUSTED", f"the model is {len(request.onnx) / 2**20:.1f} MB; "
                                                         f"the upload cap is {self.config.max_upload_mb} MB")
            self._admit(call)  # an upload's inspection takes a worker: it counts against the queue
            try:
                rec = self.registry.register(bytes(request.onnx), request.name,
                                             inspect=lambda payload: self._inspect_upload(call, payload),
                                             abandoned=call.ended)
            finally:
                self._slots.release()
            call.log["model"] = rec.id
            return model_info_to_proto(pb, rec)

        return self._guard(call, body)

    def ListModels(self, request, context):
        call = Call("ListModels", context, stopping=self.stopping)
        return self._guard(call, lambda: pb.ListModelsResponse(
            models=[model_info_to_proto(pb, r) for r in self.registry.list()]))

    def Explain(self, request, context):
        call = Call("Explain", context, request.model, stopping=self.stopping)

        def body():
            return self._response(call, *self._job(call, request, "explain"))

        return self._guard(call, body)

    def DumpConstraints(self, request, context):
        call = Call("DumpConstraints", context, request.model, stopping=self.stopping)

        def body():
            out, _, _ = self._job(call, request, "dump")
            return pb.DumpResponse(smtlib=out["text"], constraints=out["constraints"], format=out["format"])

        return self._guard(call, body)

    def ExplainStream(self, request, context):
        """Progress events from a helper thread's job, then the result (always last)."""
        import queue

        call = Call("ExplainStream", context, request.model, stopping=self.stopping)
        events: queue.Queue = queue.Queue()
        outcome: dict = {}

        def on_event(ev: dict) -> None:
            events.put(_event(ev, call.t0))

        def work() -> None:
            try:
                outcome["response"] = self._response(call, *self._job(call, request, "explain", on_event))
            except BaseException as exc:  # handed to the RPC thread below
                outcome["error"] = exc
            events.put(None)

        def failed():
            raise outcome["error"]

        events.put(pb.ProgressEvent(stage=pb.StageEvent(stage="queue", finished=False, seconds=0.0)))
        threading.Thread(target=work, daemon=True, name=f"smug-stream-{call.id}").start()
        try:
            while True:
                ev = events.get()
                if ev is None:
                    break
                yield ev
            if "error" in outcome:
                self._guard(call, failed)
            call.finish("OK")
            yield pb.ProgressEvent(result=outcome["response"])
        finally:  # the client went away mid-stream
            call.finish("CANCELLED", "the client closed the stream")

    # ---- batches on the farm (smug.server.batch) -------------------------------------
    def _batch_runner(self):
        with self._batches_lock:
            if self.batches is None:
                from smug.server.batch import Batches

                self.batches = Batches(self.config.store_dir() / "batches", self.config.farm_workers,
                                       self.config.farm_scheduler, self.config.max_timeout)
            return self.batches

    def SubmitBatch(self, request_iterator, context):
        """A stream of items (options first, then requests, each checked like Explain) -> the batch's id."""
        call = Call("SubmitBatch", context, stopping=self.stopping)

        def body():
            self._check_deadline(call)
            if self.draining:
                raise ServiceError("UNAVAILABLE", "the server is shutting down; retry on another server")
            self._admit_stream()
            slow = threading.Timer(self.config.upload_timeout, _cut, (call,))  # a stalled stream keeps no slot
            slow.start()
            try:
                return submit()
            except ServiceError:
                if call.log.get("cancelled_by") == "server":
                    raise ServiceError("DEADLINE_EXCEEDED", f"the SubmitBatch stream took longer than the server's "
                                                            f"{self.config.upload_timeout} s; nothing was submitted")
                raise
            finally:
                slow.cancel()
                self._streams.release()

        def submit():
            from smug.server.batch import Shown

            options, requests, names = None, [], []
            for n, item in enumerate(request_iterator):
                which = item.WhichOneof("item")
                if which == "options" and not requests and options is None:
                    options = item.options
                elif which == "options":
                    raise invalid(f"item {n}: batch options come first, once")
                elif which == "request":
                    if len(requests) >= self.config.max_batch_jobs:
                        raise invalid(f"a batch holds at most {self.config.max_batch_jobs} requests")
                    try:
                        req, rec, _ = self._request(call, item.request, "explain")
                    except ServiceError as exc:
                        raise ServiceError(exc.code, f"request {len(requests)}: {exc.message}") from None
                    requests.append(req)
                    names.append(Shown(_model_name(rec), rec.id, rec.zoo))
                else:
                    raise invalid(f"item {n} is empty (neither options nor a request)")
            if not requests:
                raise invalid("the batch has no requests")
            if call.ended() or call.log.get("cancelled_by") == "server":  # the stream was cut (by the client, or
                # by _cut: its iterator may end before gRPC's done-callback comes): the client hears of no batch
                raise ServiceError("CANCELLED", "the client ended the SubmitBatch call before its answer")
            job_timeout = retries = None
            if options is not None and options.HasField("job_timeout"):
                job_timeout = options.job_timeout
                if not 0 < job_timeout <= self.config.max_timeout:
                    raise invalid(f"job_timeout must lie in (0, {self.config.max_timeout}] seconds, got {job_timeout}")
            if options is not None and options.HasField("retries"):
                retries = options.retries
                if not 0 <= retries <= MAX_RETRIES:
                    raise invalid(f"retries must lie in [0, {MAX_RETRIES}], got {retries}")
            sub = self._batch_runner().submit(requests, names, job_timeout, 2 if retries is None else retries)
            call.log.update(batch=sub.batch_id, jobs=sub.jobs, pending=sub.pending)
            return pb.BatchInfo(batch_id=sub.batch_id, jobs=sub.jobs, done=sub.done, pending=sub.pending)

        return self._guard(call, body)

    def WatchBatch(self, request, context):
        """Each finished job of the batch (from the start), the counts after each; ends when none is pending."""
        from smug.server.batch import Counts

        call = Call("WatchBatch", context, stopping=self.stopping)
        batches = self._batch_runner()

        def missing():
            raise ServiceError("NOT_FOUND", f"no batch {shown(request.batch_id)} on this server")

        if not batches.exists(request.batch_id):
            self._guard(call, missing)
        call.log["batch"] = request.batch_id
        self._guard(call, self._admit_stream, done=False)
        try:
            for ev in batches.watch(request.batch_id, call.ended):
                if isinstance(ev, Counts):
                    yield pb.BatchEvent(counts=pb.BatchCounts(jobs=ev.jobs, done=ev.done, failed=ev.failed,
                                                              pending=ev.pending, running=ev.running))
                    continue
                job = pb.BatchJob(job_id=ev.job_id, items=list(ev.items), state=ev.state,
                                  reason=public(ev.reason or ""), attempts=ev.attempts)
                if ev.explanation is not None:
                    job.result.CopyFrom(explanation_to_proto(pb, _named(ev.explanation, ev.shown.name, ev.shown.zoo),
                                                             call.id, ev.shown.model_id, {}))
                yield pb.BatchEvent(job=job)
            call.finish("OK")
        finally:
            self._streams.release()
            call.finish("CANCELLED", "the client closed the stream")


def _cut(call: Call) -> None:
    """End a call from the server's side (a SubmitBatch stream past ``upload_timeout``): its client hears
    CANCELLED, its log line says the server did it."""
    call.log["cancelled_by"] = "server"
    call.context.cancel()


def _model_name(rec) -> str:
    """How answers name a registered model: its first alias, else its id."""
    return rec.aliases[0] if rec.aliases else rec.id


def _named(result, name: str, zoo: bool):
    """``result`` naming its model as the client did, never by the store's path."""
    return replace(result, request={**result.request, "model": name}, model=result.model if zoo else name)


def _event(ev: Event, t0: float):
    """A pipeline event -> ProgressEvent (a stage's time counted from the request's arrival, ``t0``)."""
    if isinstance(ev, Improved):
        return pb.ProgressEvent(improved=pb.MaskImproved(size=ev.size, lower_bound=ev.lower_bound, seconds=ev.seconds,
                                                         mask=to_tensor(pb, ev.mask)))
    finished = isinstance(ev, Stage) and ev.finished
    stage = ev.stage if isinstance(ev, (Stage, WorkDone)) else str(ev)
    return pb.ProgressEvent(stage=pb.StageEvent(stage=stage, finished=finished, seconds=max(0.0, time.time() - t0)))
