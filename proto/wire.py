"""Between ``smug.v1`` messages and the pipeline's types, for the server and the client alike.

Tensors travel as raw little-endian bytes in C order with their shape and dtype.  A
request goes over the wire as the parameters the caller set (unset ones take the
pipeline's defaults on the server); the answer as the :class:`~smug.pipeline.Explanation`'s
JSON document plus its arrays as tensors, so both ends hold the same ``Explanation``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, is_dataclass

import numpy as np

from smug.common import jsonable
from smug.pipeline import ExplainRequest, Explanation
from smug.pipeline.request import (ROBUST, SMUG, WHOLE_NETWORK, ArrayInput, BaselineConfig, DemoInput, ImageBytes,
                                   ImageFile, TextInput)

DTYPES = {"float32": np.float32, "float64": np.float64, "uint8": np.uint8, "bool": np.bool_}
MAX_DIMS = 8  # a tensor's rank on the wire (models read at most 4 plus the batch)
UNBOUNDED = ("epsilon", math.inf)  # the one non-finite number a request may carry (robust: the whole domain)
CHOICE = ("method", "baseline_method")  # ExplainParams fields that say which method, not its parameters
TENSORS = {"mask": "mask", "pixel_mask": "pixel_mask", "saliency": "saliency", "base_mask": "base_mask",
           "base_saliency": "base_saliency", "picture": "image"}  # ImageParts field -> response field


@dataclass(frozen=True)
class ModelInfo:
    """What a server tells about a model it knows (``smug.v1.ModelInfo``)."""

    id: str  # sha256 of the ONNX bytes
    aliases: tuple[str, ...]
    input_shape: tuple[int, ...]
    n_classes: int
    description: str
    zoo: bool
    size_bytes: int
    whole_network: bool  # the whole network can be encoded (method "whole-network")
    kind: str = "image"  # "text": token ids in, one rating out


def model_info_to_proto(pb, info: ModelInfo):
    return pb.ModelInfo(id=info.id, aliases=list(info.aliases), input_shape=list(info.input_shape),
                        n_classes=info.n_classes, description=info.description, zoo=info.zoo,
                        size_bytes=info.size_bytes, whole_network=info.whole_network, kind=info.kind)


def model_info_from_proto(m) -> ModelInfo:
    return ModelInfo(m.id, tuple(m.aliases), tuple(m.input_shape), m.n_classes, m.description, m.zoo,
                     m.size_bytes, m.whole_network, m.kind or ModelInfo.kind)


class WireError(ValueError):
    """A malformed message (the server answers INVALID_ARGUMENT with this text)."""


# ---- tensors -------------------------------------------------------------------------
def to_tensor(pb, array: np.ndarray | None):
    """numpy array -> ``smug.v1.Tensor`` (empty message for None)."""
    if array is None:
        return pb.Tensor()
    a = np.ascontiguousarray(array)
    name = np.dtype(a.dtype.type).name  # the type, whatever its byte order: '>f4' travels as float32
    return pb.Tensor(shape=list(a.shape), dtype=name, data=a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


def from_tensor(t, what: str = "tensor") -> np.ndarray | None:
    """``smug.v1.Tensor`` -> numpy array (None for an empty message); :class:`WireError` when malformed."""
    if not t.dtype and not t.shape and not t.data:
        return None
    if t.dtype not in DTYPES:
        raise WireError(f"{what}: unsupported dtype {t.dtype!r}; use one of {sorted(DTYPES)}")
    if len(t.shape) > MAX_DIMS:
        raise WireError(f"{what} has {len(t.shape)} dimensions; at most {MAX_DIMS} are accepted")
    shape = tuple(int(d) for d in t.shape)
    if any(d < 0 for d in shape):
        raise WireError(f"{what}: negative dimension in shape {shape}")
    n = math.prod(shape)
    if n == 0:
        raise WireError(f"{what} is empty (shape {shape})")
    dtype = np.dtype(DTYPES[t.dtype]).newbyteorder("<")
    if len(t.data) != n * dtype.itemsize:
        raise WireError(f"{what}: {len(t.data)} bytes do not match shape {shape} of {t.dtype} "
                        f"({n * dtype.itemsize} bytes expected)")
    return np.frombuffer(t.data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


# ---- requests ------------------------------------------------------------------------
def wire_parameters(pb) -> tuple[str, ...]:
    """The parameters a request can carry: the fields of ``smug.v1.ExplainParams`` (the .proto
    owns the list) but the method's choice."""
    return tuple(f.name for f in pb.ExplainParams.DESCRIPTOR.fields if f.name not in CHOICE)


def _set(config) -> dict:
    """The fields of a config dataclass (a text's SMUG encoding flattened in) that differ from its defaults."""
    if isinstance(config, BaselineConfig):
        return dict(config.params)
    defaults = type(config)()
    out = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            out.update(_set(value))
        elif value != getattr(defaults, f.name):
            out[f.name] = value
    return out


def request_to_proto(pb, request: ExplainRequest, model: str | None = None):
    """A validated request as ``smug.v1.ExplainRequest`` (``model``: the server's name for it):
    the one mapping from :class:`ExplainRequest` to the wire.  Parameters equal to the
    pipeline's defaults are left unset; one the wire cannot carry raises :class:`WireError`."""
    params = _set(request.config)
    if request.keep is not None:
        params.update(keep_class=True, **_set(request.keep))
    if request.preprocess is not None:
        params["preprocess"] = request.preprocess
    src = request.input
    source = None if isinstance(src, (TextInput, DemoInput)) else src
    text = src.text if isinstance(src, TextInput) else None
    return message(pb, model or request.model, source, text, request.method, backend=request.backend,
                   timeout=request.timeout, target=request.target, **params)


def message(pb, model: str, source=None, text: str | bytes | None = None, method: str = SMUG, **params):
    """``smug.v1.ExplainRequest`` from loose arguments (None: unset, the server's default).
    ``source``: an image path or its bytes, a model-space array, or None (the demo input)."""
    req = pb.ExplainRequest(model=model)
    p = req.params
    if method in (SMUG, "first-layer"):
        p.method = pb.FIRST_LAYER
    elif method == WHOLE_NETWORK:
        p.method = pb.WHOLE_NETWORK
    elif method == ROBUST:
        p.method = pb.ROBUST
    else:
        p.method = pb.BASELINE
        p.baseline_method = method
    names = wire_parameters(pb)
    for key, value in params.items():
        if value is not None:
            if key not in names:
                raise WireError(f"parameter {key!r} cannot be sent to a server; it takes {names}")
            setattr(p, key, value)
    if text is not None:  # bytes on the wire: the server answers INVALID_ARGUMENT for non-UTF-8
        req.text = text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogateescape")
    elif isinstance(source, ArrayInput):
        req.tensor.CopyFrom(to_tensor(pb, np.asarray(source.array)))
    elif isinstance(source, np.ndarray):
        req.tensor.CopyFrom(to_tensor(pb, source))
    elif isinstance(source, ImageBytes):
        req.image = source.data
    elif isinstance(source, (bytes, bytearray)):
        req.image = bytes(source)
    elif source is not None:
        with open(source.path if isinstance(source, ImageFile) else source, "rb") as f:
            req.image = f.read()
    return req


def request_fields(pb, req) -> dict:
    """The keyword arguments of :meth:`ExplainRequest.build` a message carries (model and
    input excluded: the server resolves those)."""
    p = req.params
    method = {pb.METHOD_UNSPECIFIED: SMUG, pb.FIRST_LAYER: SMUG, pb.WHOLE_NETWORK: WHOLE_NETWORK,
              pb.ROBUST: ROBUST, pb.BASELINE: None}.get(p.method, "")
    if method == "":
        raise WireError(f"unknown method {p.method}")
    if method is None:
        if not p.HasField("baseline_method"):
            raise WireError("method BASELINE needs baseline_method (e.g. 'gradient')")
        method = p.baseline_method
    out: dict = {"method": method}
    for f in p.DESCRIPTOR.fields:
        if f.name not in CHOICE and p.HasField(f.name):
            out[f.name] = getattr(p, f.name)
            if f.type == f.TYPE_DOUBLE and not math.isfinite(out[f.name]) and (f.name, out[f.name]) != UNBOUNDED:
                raise WireError(f"{f.name} must be finite, got {out[f.name]}")
    return out


def input_of(req, what: str = "input tensor"):
    """The message's input for :meth:`ExplainRequest.build`: (source, text)."""
    which = req.WhichOneof("input")
    if which == "tensor":
        x = from_tensor(req.tensor, what)
        if x is None:
            raise WireError(f"{what} is empty")
        if x.dtype not in (np.float32, np.float64):
            raise WireError(f"{what} dtype {x.dtype} is not float32 or float64")
        return ArrayInput(x), None
    if which == "image":
        if not req.image:
            raise WireError("the image is empty")
        return ImageBytes(bytes(req.image)), None
    if which == "text":
        return None, bytes(req.text)
    return DemoInput(), None


# ---- answers -------------------------------------------------------------------------
def explanation_to_proto(pb, e: Explanation, request_id: str, model_id: str, extra_timings: dict):
    """``Explanation`` -> ``ExplainResponse`` (arrays as tensors, the rest in ``result_json``)."""
    c = e.certificate or {}
    cert = pb.CertificateSummary(valid=bool(c.get("valid")), mask_size=int(c.get("mask_size") or 0),
                                 constraints=int(c.get("constraints") or 0), n_violated=int(c.get("n_violated") or 0),
                                 min_slack=float(c["min_slack"]) if c.get("min_slack") is not None else 0.0,
                                 checked=str(c.get("checked", "")), seconds=float(c.get("seconds") or 0.0))
    timings = {k: float(v) for k, v in {**e.timings, **extra_timings}.items() if isinstance(v, (int, float))}
    r = pb.ExplainResponse(
        request_id=request_id, status=e.status, lower_bound=int(e.lower_bound), n_blocks=int(e.n_vars),
        proof=e.proof, target=int(e.target), target_name=str(e.target_name), confidence=float(e.confidence),
        certificate=cert, timings=timings, model_id=model_id,
        result_json=json.dumps({**e.to_json(), "timings": timings}, default=jsonable))
    if e.image is not None:
        for part, name in TENSORS.items():
            a = getattr(e.image, part)
            if a is not None and a.dtype == np.float64:
                a = a.astype(np.float32)  # maps travel as float32
            getattr(r, name).CopyFrom(to_tensor(pb, a))
    if e.objective is not None:
        r.objective = int(e.objective)
    if e.keeps_class is not None:
        r.keeps_class = bool(e.keeps_class)
    if e.masked_confidence is not None:
        r.masked_confidence = float(e.masked_confidence)
    return r


def explanation_from_proto(r, origin: dict | None = None) -> Explanation:
    """``ExplainResponse`` -> the server's :class:`Explanation` (``origin`` adds where it came from)."""
    data = json.loads(r.result_json)
    arrays = {part: from_tensor(getattr(r, name), name) for part, name in TENSORS.items()}
    if arrays["picture"] is None:
        arrays = None
    return Explanation.from_json(data, arrays, {"request_id": r.request_id, "model_id": r.model_id,
                                                **(origin or {})})


__all__ = ["ModelInfo", "WireError", "model_info_from_proto", "model_info_to_proto", "explanation_from_proto", "explanation_to_proto", "from_tensor", "input_of", "message",
           "request_fields", "request_to_proto", "to_tensor", "wire_parameters"]
