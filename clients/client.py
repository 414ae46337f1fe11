"""Typed Python client of the smug gRPC service.

    >>> from smug.clients import Client
    >>> with Client("localhost:50051") as c:
    ...     e = c.explain("cat.jpg", model="efficientnet-lite0", timeout=30)
    ...     e.status, e.objective, e.certificate["valid"]

Results are the pipeline's :class:`~smug.pipeline.Explanation` (``save()``,
``to_json()``), exactly as a local run returns it, with ``origin`` saying which server,
request id and model id answered.  Failed calls raise :class:`RemoteError` with the gRPC
status code and the server's message.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from smug.events import Improved, Stage
from smug.pipeline import ExplainRequest, Explanation
from smug.proto.wire import (ModelInfo, explanation_from_proto, from_tensor, message, model_info_from_proto,
                             request_to_proto)

Source = str | os.PathLike | bytes | np.ndarray | None


class PlaintextTokenWarning(UserWarning):
    """A bearer token is about to travel unencrypted."""


def _loopback(target: str) -> bool:
    """Whether ``target`` (``host:port``, ``ipv4:...``, ``unix:...``) is this machine."""
    import ipaddress

    if target.startswith(("unix:", "unix-abstract:")):
        return True
    host = target.split("///")[-1].removeprefix("ipv4:").removeprefix("ipv6:")
    host = host[1:host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RemoteError(ValueError):
    """A call the server refused or could not complete: ``code`` is the ``grpc.StatusCode``."""

    def __init__(self, code, message: str):
        super().__init__(f"{getattr(code, 'name', code)}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BatchInfo:
    """A submitted batch: its id and how many of its distinct jobs are already done."""

    batch_id: str
    jobs: int
    done: int
    pending: int


@dataclass(frozen=True)
class BatchJob:
    """One finished job of a batch; ``items``: positions of its requests in the submission."""

    job_id: str
    items: tuple[int, ...]
    state: str  # done | failed
    reason: str
    attempts: int
    explanation: Explanation | None


@dataclass(frozen=True)
class BatchCounts:
    jobs: int
    done: int
    failed: int
    pending: int
    running: bool  # false with pending jobs: interrupted (submit the same requests again to resume)


class Client:
    """Client of ``smug.v1.Smug`` at ``target`` (``host:port``).

    ``token`` adds ``authorization: Bearer <token>`` metadata; ``root_certificates``
    (PEM bytes) or ``tls=True`` (system roots) use TLS, and ``client_cert`` with
    ``client_key`` (PEM bytes) present a client certificate (a server with
    ``--tls-client-ca``: mutual TLS); ``deadline`` (seconds) is the default gRPC deadline
    of explain calls (None: none, the solver timeout rules).  A token sent without TLS to
    a host other than this machine draws a :class:`PlaintextTokenWarning`.
    """

    def __init__(self, target: str, token: str | None = None, tls: bool = False,
                 root_certificates: bytes | None = None, deadline: float | None = None,
                 max_message_mb: float = 100.0, client_cert: bytes | None = None, client_key: bytes | None = None):
        import grpc

        from smug.proto import load

        self._grpc = grpc
        self.pb, pb_grpc = load()
        size = int(max_message_mb * 2**20)
        options = [("grpc.max_send_message_length", size), ("grpc.max_receive_message_length", size)]
        if (client_cert is None) != (client_key is None):
            raise ValueError("a client certificate needs both client_cert and client_key")
        if tls or root_certificates is not None or client_cert is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates, private_key=client_key,
                                                 certificate_chain=client_cert)
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            if token and not _loopback(target):
                warnings.warn(f"sending the bearer token to {target} without TLS: anyone on the network path can "
                              "read it (pass root_certificates=... or tls=True)", PlaintextTokenWarning, stacklevel=2)
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.SmugStub(self.channel)
        self.target = target
        self.deadline = deadline
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    # ---- plumbing ----------------------------------------------------------
    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, rpc, request, deadline: float | None = None):
        try:
            return rpc(request, timeout=deadline, metadata=self._metadata)
        except self._grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from None

    def _request(self, source: Source, model: str, text: str | bytes | None, params: dict):
        return message(self.pb, model, source if not isinstance(source, os.PathLike) else str(source), text, **params)

    def _explanation(self, r) -> Explanation:
        return explanation_from_proto(r, {"server": self.target})

    # ---- API ---------------------------------------------------------------
    def explain(self, source: Source = None, model: str = "efficientnet-lite0", *, text: str | bytes | None = None,
                deadline: float | None = None, **params) -> Explanation:
        """Like :func:`smug.pipeline.explain`, computed by the server.  ``source``: an image file
        path or its bytes (zoo models), a model-space array, or None (the zoo model's demo input);
        ``params``: those of :meth:`~smug.pipeline.ExplainRequest.build` the wire carries
        (``method``, ``top_k``, ``gamma``, ``window``, ``timeout``, ``keep_class``, ...:
        :func:`smug.proto.wire.wire_parameters`); unset ones take the pipeline's defaults."""
        r = self._call(self.stub.Explain, self._request(source, model, text, params), deadline or self.deadline)
        return self._explanation(r)

    def explain_request(self, request: ExplainRequest, deadline: float | None = None) -> Explanation:
        """A validated :class:`~smug.pipeline.ExplainRequest`, sent as it is
        (:func:`smug.proto.wire.request_to_proto`)."""
        r = self._call(self.stub.Explain, request_to_proto(self.pb, request), deadline or self.deadline)
        return self._explanation(r)

    def explain_stream(self, source: Source = None, model: str = "efficientnet-lite0", *,
                       deadline: float | None = None, text: str | bytes | None = None,
                       **params) -> Iterator[Stage | Improved | Explanation]:
        """Progress as it happens: :class:`~smug.events.Stage` and :class:`~smug.events.Improved` events
        (the pipeline's own), then the
        :class:`Explanation` (always last).  Closing the iterator cancels the request."""
        params.setdefault("method", "smug")
        yield from self.stream(self._request(source, model, text, params), deadline)

    def stream(self, request, deadline: float | None = None) -> Iterator[Stage | Improved | Explanation]:
        """:meth:`explain_stream` of a ``smug.v1.ExplainRequest`` message (e.g. a validated
        :class:`~smug.pipeline.ExplainRequest` through :func:`smug.proto.wire.request_to_proto`)."""
        stream = self.stub.ExplainStream(request, timeout=deadline or self.deadline, metadata=self._metadata)
        try:
            for ev in stream:
                kind = ev.WhichOneof("event")
                if kind == "stage":
                    yield Stage(ev.stage.stage, ev.stage.finished, ev.stage.seconds)
                elif kind == "improved":
                    m = ev.improved
                    yield Improved(m.size, m.lower_bound, m.seconds, from_tensor(m.mask))
                else:
                    yield self._explanation(ev.result)
        except self._grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from None
        finally:
            stream.cancel()

    def dump(self, source: Source = None, model: str = "efficientnet-lite0", *, format: str | None = None,
             bound: int | None = None, deadline: float | None = None, **params) -> str:
        """The request's constraints as a dump (``smug.pipeline.dump``): ``format`` smt2 (default),
        wcnf, lp or mps; ``bound`` K: smt2 asserting count <= K instead of z3's minimize;
        ``params`` as for :meth:`explain`."""
        params = {**params, "dump_format": format, "dump_bound": bound}
        r = self._call(self.stub.DumpConstraints, self._request(source, model, None, params),
                       deadline or self.deadline)
        return r.smtlib

    def register_model(self, onnx: bytes | str | os.PathLike, name: str = "") -> ModelInfo:
        """Upload an ONNX model (bytes or a file path); its id is the sha256 of the bytes."""
        data = bytes(onnx) if isinstance(onnx, (bytes, bytearray)) else Path(onnx).read_bytes()
        request = self.pb.RegisterModelRequest(onnx=data, name=name)
        return model_info_from_proto(self._call(self.stub.RegisterModel, request))

    def list_models(self) -> list[ModelInfo]:
        return [model_info_from_proto(m) for m in self._call(self.stub.ListModels, self.pb.ListModelsRequest()).models]

    def submit_batch(self, requests: Iterable[dict | ExplainRequest], *, job_timeout: float | None = None,
                     retries: int | None = None, deadline: float | None = None) -> BatchInfo:
        """Run many requests on the server's farm.  Each request is a validated
        :class:`~smug.pipeline.ExplainRequest` or a dict of :meth:`explain`'s arguments (``source``,
        ``model``, ``text``, ``method``, ``top_k``, ...).  Submitting the same requests again (in
        any order) runs nothing twice; the batch id returned maps the positions of *this* list."""
        pb = self.pb

        def items():
            options = {k: v for k, v in (("job_timeout", job_timeout), ("retries", retries)) if v is not None}
            if options:
                yield pb.BatchItem(options=pb.BatchOptions(**options))
            for r in requests:
                if isinstance(r, ExplainRequest):
                    yield pb.BatchItem(request=request_to_proto(pb, r))
                    continue
                params = {k: v for k, v in r.items() if k not in ("source", "model", "text")}
                yield pb.BatchItem(request=self._request(r.get("source"), r.get("model", "efficientnet-lite0"),
                                                         r.get("text"), params))

        r = self._call(self.stub.SubmitBatch, items(), deadline)
        return BatchInfo(r.batch_id, r.jobs, r.done, r.pending)

    def watch_batch(self, batch_id: str, deadline: float | None = None) -> Iterator[BatchJob | BatchCounts]:
        """Every finished job of the batch (from the start) and the counts after each, until none
        is pending; :class:`BatchCounts` comes last."""
        stream = self.stub.WatchBatch(self.pb.WatchBatchRequest(batch_id=batch_id), timeout=deadline,
                                      metadata=self._metadata)
        try:
            for ev in stream:
                if ev.WhichOneof("event") == "counts":
                    c = ev.counts
                    yield BatchCounts(c.jobs, c.done, c.failed, c.pending, c.running)
                    continue
                j = ev.job
                e = self._explanation(j.result) if j.HasField("result") else None
                yield BatchJob(j.job_id, tuple(j.items), j.state, j.reason, j.attempts, e)
        except self._grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from None
        finally:
            stream.cancel()

    def health(self, service: str = "", deadline: float = 5.0) -> str:
        """The server's health status name (``SERVING``, ``NOT_SERVING``, ...)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        r = self._call(stub.Check, health_pb2.HealthCheckRequest(service=service), deadline)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


def explain_with_progress(client: Client, source: Source, model: str, out: IO[str] | None = None,
                          width: int = 30, **params) -> Explanation:
    """``explain_stream`` drawn as a one-line progress bar on ``out`` (:func:`progress_line`)."""
    return progress_line(client.explain_stream(source, model, **params), out, width)


def progress_line(events: Iterable[Stage | Improved | Explanation], out: IO[str] | None = None,
                  width: int = 30) -> Explanation:
    """A stream's events drawn as a one-line progress bar on ``out``: the bar is the proven share
    of the mask (lower bound / size; full = proven minimal); returns the explanation."""
    out = out or sys.stderr
    result = None
    stage, size, lower = "queue", None, 0
    for ev in events:
        if isinstance(ev, Stage):
            stage = ev.stage if not ev.finished else stage
        elif isinstance(ev, Improved):
            size, lower = ev.size, ev.lower_bound
        else:
            result = ev
            size, lower, stage = ev.objective, ev.lower_bound, ev.status
        done = 0.0 if not size else min(1.0, lower / size)
        if result is not None and result.status == "optimal":
            done = 1.0
        bar = "#" * round(width * done) + "." * (width - round(width * done))
        shown = "-" if size is None else str(size)
        out.write(f"\r[{bar}] {stage:<9s} mask {shown:>6s}  lower bound {lower:>6d}")
        out.flush()
    out.write("\n")
    return result
