"""Typed Python client of the smug gRPC service.

    >>> from smug.clients import Client
    >>> with Client("localhost:50051") as c:
    ...     e = c.explain("cat.jpg", model="efficientnet-lite0", timeout=30)
    ...     e.status, e.objective, e.certificate["valid"]

Results are :class:`RemoteExplanation` objects: the library's
:class:`~smug.clients.result.Explanation` (``save()``, ``to_json()``) plus the
request id and model id.  Failed calls raise :class:`RemoteError` with the gRPC
status code and the server's message.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from smug.clients.result import Explanation

Source = str | os.PathLike | bytes | np.ndarray | None


class RemoteError(ValueError):
    """A call the server refused or could not complete: ``code`` is the ``grpc.StatusCode``."""

    def __init__(self, code, message: str):
        super().__init__(f"{getattr(code, 'name', code)}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RemoteExplanation(Explanation):
    """An :class:`Explanation` computed by the server; ``server_result`` is the server's
    full result.json (for text models: words, rows, rating, ...)."""

    request_id: str = ""
    model_id: str = ""
    server_result: dict = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        out = super().to_json()
        out.pop("server_result", None)
        return out


@dataclass(frozen=True)
class ModelInfo:
    id: str
    aliases: tuple[str, ...]
    input_shape: tuple[int, ...]
    n_classes: int
    description: str
    zoo: bool
    size_bytes: int
    whole_network: bool


@dataclass(frozen=True)
class Stage:
    """A pipeline stage (queue, encode, solve) started or finished, ``seconds`` after the request."""

    stage: str
    finished: bool
    seconds: float


@dataclass(frozen=True)
class Improvement:
    """A better verified mask or a better proven lower bound, ``seconds`` into the solve."""

    size: int
    lower_bound: int
    seconds: float
    mask: np.ndarray | None  # bool, flat over the block grid


def _array(t) -> np.ndarray | None:
    from smug.server.convert import from_tensor

    return from_tensor(t)


class Client:
    """Client of ``smug.v1.Smug`` at ``target`` (``host:port``).

    ``token`` adds ``authorization: Bearer <token>`` metadata; ``root_certificates``
    (PEM bytes) or ``tls=True`` (system roots) use TLS; ``deadline`` (seconds) is the
    default gRPC deadline of explain calls (None: none, the solver timeout rules).
    """

    def __init__(self, target: str, token: str | None = None, tls: bool = False,
                 root_certificates: bytes | None = None, deadline: float | None = None,
                 max_message_mb: float = 100.0):
        import grpc

        from smug.proto import load

        self._grpc = grpc
        self.pb, pb_grpc = load()
        size = int(max_message_mb * 2**20)
        options = [("grpc.max_send_message_length", size), ("grpc.max_receive_message_length", size)]
        if tls or root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
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
        pb = self.pb
        req = pb.ExplainRequest(model=model)
        method = params.pop("method", "first-layer")
        methods = {"first-layer": pb.FIRST_LAYER, "whole-network": pb.WHOLE_NETWORK}
        if method not in methods:
            raise ValueError(f"method must be one of {tuple(methods)}, got {method!r}")
        req.params.method = methods[method]
        for key, value in params.items():
            if value is not None:
                setattr(req.params, key, value)
        if text is not None:  # bytes on the wire: the server answers INVALID_ARGUMENT for non-UTF-8
            req.text = text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogateescape")
        elif isinstance(source, np.ndarray):
            from smug.server.convert import to_tensor

            req.tensor.CopyFrom(to_tensor(pb, source))
        elif isinstance(source, (bytes, bytearray)):
            req.image = bytes(source)
        elif source is not None:
            req.image = Path(source).read_bytes()
        return req

    def _explanation(self, r) -> RemoteExplanation:
        data = json.loads(r.result_json)
        mask, base = _array(r.mask), _array(r.base_mask)
        saliency = _array(r.saliency)
        return RemoteExplanation(
            model=data.get("model", ""), input=data.get("input", ""), target=r.target, target_name=r.target_name,
            confidence=r.confidence, config=data.get("config", {}), status=r.status,
            objective=r.objective if r.HasField("objective") else None, lower_bound=r.lower_bound,
            n_blocks=r.n_blocks, proof=r.proof, mask=mask, pixel_mask=_array(r.pixel_mask),
            saliency=saliency if saliency is not None else np.zeros((0, 0)),
            base_mask=base if base is not None else np.zeros((0, 0), bool),
            base_saliency=_array(r.base_saliency) if base is not None else np.zeros((0, 0)),
            certificate=data.get("certificate", {"valid": r.certificate.valid}),
            masked_prediction=data.get("masked_prediction", {}), ig=data.get("ig", {}),
            encoding=data.get("encoding", {}), timings=dict(r.timings), image=_array(r.image),
            request_id=r.request_id, model_id=r.model_id, server_result=data,
        )

    # ---- API ---------------------------------------------------------------
    def explain(self, source: Source = None, model: str = "efficientnet-lite0", *, text: str | bytes | None = None,
                method: str = "first-layer", top_k: int | None = None, gamma: float | None = None,
                window: int | None = None, form: str | None = None, baseline: float | None = None,
                ig_steps: int | None = None, backend: str | None = None, timeout: float | None = None,
                target: int | None = None, delta: float | None = None, min_confidence: float | None = None,
                deadline: float | None = None) -> RemoteExplanation:
        """Like :func:`smug.clients.api.explain` (``method="whole-network"``:
        :func:`~smug.clients.api.explain_network`), solved by the server.  ``source``: an
        image file path or its bytes (zoo models), a model-space array, or None (the zoo
        model's demo input).  Unset parameters take the library defaults."""
        params = dict(method=method, top_k=top_k, gamma=gamma, window=window, form=form, baseline=baseline,
                      ig_steps=ig_steps, backend=backend, timeout=timeout, target=target, delta=delta,
                      min_confidence=min_confidence)
        r = self._call(self.stub.Explain, self._request(source, model, text, params), deadline or self.deadline)
        return self._explanation(r)

    def explain_stream(self, source: Source = None, model: str = "efficientnet-lite0", *,
                       deadline: float | None = None, text: str | bytes | None = None,
                       **params) -> Iterator[Stage | Improvement | RemoteExplanation]:
        """Progress as it happens: :class:`Stage` and :class:`Improvement` events, then the
        :class:`RemoteExplanation` (always last).  Closing the iterator cancels the request."""
        params.setdefault("method", "first-layer")
        req = self._request(source, model, text, params)
        stream = self.stub.ExplainStream(req, timeout=deadline or self.deadline, metadata=self._metadata)
        try:
            for ev in stream:
                kind = ev.WhichOneof("event")
                if kind == "stage":
                    yield Stage(ev.stage.stage, ev.stage.finished, ev.stage.seconds)
                elif kind == "improved":
                    m = ev.improved
                    yield Improvement(m.size, m.lower_bound, m.seconds, _array(m.mask))
                else:
                    yield self._explanation(ev.result)
        except self._grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from None
        finally:
            stream.cancel()

    def dump(self, source: Source = None, model: str = "efficientnet-lite0", *, top_k: int | None = None,
             gamma: float | None = None, window: int | None = None, form: str | None = None,
             baseline: float | None = None, ig_steps: int | None = None, target: int | None = None,
             deadline: float | None = None) -> str:
        """The first-layer encoding (Eq. 3) as SMT-LIB2 text."""
        params = dict(top_k=top_k, gamma=gamma, window=window, form=form, baseline=baseline, ig_steps=ig_steps,
                      target=target)
        r = self._call(self.stub.DumpConstraints, self._request(source, model, None, params),
                       deadline or self.deadline)
        return r.smtlib

    def register_model(self, onnx: bytes | str | os.PathLike, name: str = "") -> ModelInfo:
        """Upload an ONNX model (bytes or a file path); its id is the sha256 of the bytes."""
        data = bytes(onnx) if isinstance(onnx, (bytes, bytearray)) else Path(onnx).read_bytes()
        return _info(self._call(self.stub.RegisterModel, self.pb.RegisterModelRequest(onnx=data, name=name)))

    def list_models(self) -> list[ModelInfo]:
        return [_info(m) for m in self._call(self.stub.ListModels, self.pb.ListModelsRequest()).models]

    def health(self, service: str = "", deadline: float = 5.0) -> str:
        """The server's health status name (``SERVING``, ``NOT_SERVING``, ...)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        r = self._call(stub.Check, health_pb2.HealthCheckRequest(service=service), deadline)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


def _info(m) -> ModelInfo:
    return ModelInfo(m.id, tuple(m.aliases), tuple(m.input_shape), m.n_classes, m.description, m.zoo,
                     m.size_bytes, m.whole_network)


def explain_with_progress(client: Client, source: Source, model: str, out: IO[str] | None = None,
                          width: int = 30, **params) -> RemoteExplanation:
    """``explain_stream`` drawn as a one-line progress bar on ``out``: the bar is the
    proven share of the mask (lower bound / size; full = proven minimal)."""
    out = out or sys.stderr
    result = None
    stage, size, lower = "queue", None, 0
    for ev in client.explain_stream(source, model, **params):
        if isinstance(ev, Stage):
            stage = ev.stage if not ev.finished else stage
        elif isinstance(ev, Improvement):
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


def cli_explain(a, argv: list[str] | None = None) -> int:
    """``smug explain --server HOST:PORT``: the local command's outputs (``--out`` folder,
    summary on stdout), solved by the server, with a progress bar on stderr.  ``argv``
    (the command line) tells whether ``--top-k`` was given; without it a top-k equal to
    the image default (3000) counts as not given."""
    from smug.models.preprocess import InputError

    if a.method != "smug":
        raise ValueError("--server runs SMUG; baselines run locally (drop --server)")
    if getattr(a, "text_file", None):
        raise ValueError("--text-file is not supported with --server; pass --text")
    if a.image is not None and not Path(a.image).is_file():
        raise InputError(f"input file not found: {a.image}")
    text = getattr(a, "text", None)
    params = dict(timeout=a.timeout, backend=a.backend, target=a.target)
    if text is not None:
        explicit_k = (a.top_k != 3000 if argv is None
                      else any(s == "--top-k" or s.startswith("--top-k=") for s in argv))
        params = dict(timeout=a.timeout, backend=a.backend, gamma=a.gamma, form=a.form, ig_steps=a.ig_steps,
                      top_k=a.top_k if explicit_k else None)  # None: the text default (100)
    elif a.whole_network:
        params.update(method="whole-network", window=a.window, baseline=a.baseline, delta=a.delta,
                      min_confidence=a.min_confidence)
    else:
        params.update(top_k=a.top_k, gamma=a.gamma, window=a.window, form=a.form, baseline=a.baseline,
                      ig_steps=a.ig_steps)
    with Client(a.server, token=os.environ.get("SMUG_TOKEN") or None) as client:
        e = explain_with_progress(client, a.image, a.model, text=text, **params)
    out = Path(a.out)
    if text is not None:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".result.json.tmp"
        tmp.write_text(json.dumps(e.server_result, indent=2))
        tmp.replace(out / "result.json")
    else:
        e.save(out)
    print(json.dumps({
        "status": e.status, "target": f"{e.target} {e.target_name} ({e.confidence:.3f})",
        "blocks": f"{e.objective} of {e.n_blocks}", "lower_bound": e.lower_bound,
        "certificate_valid": e.certificate.get("valid"), "masked_prediction": e.masked_prediction,
        "timings_s": e.timings, "server": a.server, "request_id": e.request_id, "out": str(out),
    }, indent=2))
    return 0 if e.status in ("optimal", "feasible") else 1
