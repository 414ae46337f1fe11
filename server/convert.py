"""Between protobuf messages and the library: tensors, parameters, results.

Tensors travel as raw little-endian bytes in C order with their shape and dtype.
Parameter checks mirror the library's (:class:`~smug.encoders.smug.SmugConfig`,
:func:`~smug.clients.api.explain_network`) so that bad input is refused before it
takes a place in the queue, with the parameter named in the message.
"""

from __future__ import annotations

import json
import math

import numpy as np

from smug.server.errors import invalid

DTYPES = {"float32": np.float32, "float64": np.float64, "uint8": np.uint8, "bool": np.bool_}
FIRST_LAYER_BACKENDS = ("auto", "highs", "z3", "portfolio")
NETWORK_BACKENDS = ("auto", "highs", "z3", "enum", "portfolio")
FORMS = ("linear", "affine")
MAX_TOP_K = 10_000_000
MAX_IG_STEPS = 100_000


def to_tensor(pb, array: np.ndarray | None):
    """numpy array -> ``smug.v1.Tensor`` (empty message for None)."""
    if array is None:
        return pb.Tensor()
    a = np.ascontiguousarray(array)
    name = "bool" if a.dtype == np.bool_ else str(a.dtype)  # the receiver refuses dtypes outside DTYPES
    return pb.Tensor(shape=list(a.shape), dtype=name, data=a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


def from_tensor(t, what: str = "tensor") -> np.ndarray | None:
    """``smug.v1.Tensor`` -> numpy array (None for an empty message); INVALID_ARGUMENT when malformed."""
    if not t.dtype and not t.shape and not t.data:
        return None
    if t.dtype not in DTYPES:
        raise invalid(f"{what}: unsupported dtype {t.dtype!r}; use one of {sorted(DTYPES)}")
    shape = tuple(int(d) for d in t.shape)
    if any(d < 0 for d in shape):
        raise invalid(f"{what}: negative dimension in shape {shape}")
    n = math.prod(shape)
    if n == 0:
        raise invalid(f"{what} is empty (shape {shape})")
    dtype = np.dtype(DTYPES[t.dtype]).newbyteorder("<")
    if len(t.data) != n * dtype.itemsize:
        raise invalid(f"{what}: {len(t.data)} bytes do not match shape {shape} of {t.dtype} "
                      f"({n * dtype.itemsize} bytes expected)")
    return np.frombuffer(t.data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def model_input(t, input_shape: tuple[int, ...]) -> np.ndarray:
    """A request's input tensor, checked against the model: shape (batch of 1 allowed), finite."""
    x = from_tensor(t, "input tensor")
    if x is None:
        raise invalid("input tensor is empty")
    if x.dtype not in (np.float32, np.float64):
        raise invalid(f"input tensor dtype {x.dtype} is not float32 or float64")
    if x.shape == (1, *input_shape):
        x = x[0]
    if x.shape != tuple(input_shape):
        raise invalid(f"input tensor has shape {x.shape}; the model needs {tuple(input_shape)}")
    if not np.all(np.isfinite(x)):
        raise invalid("input tensor contains NaN or Inf")
    return x.astype(np.float32)


def _finite(name: str, v: float) -> float:
    if not math.isfinite(v):
        raise invalid(f"{name} must be finite, got {v}")
    return float(v)


def explain_kwargs(pb, params, record, max_timeout: float) -> tuple[str, dict]:
    """(method, keyword arguments of explain / explain_network) from ``ExplainParams``."""
    method = {0: "first-layer", 1: "first-layer", 2: "whole-network"}.get(params.method)
    if method is None:
        raise invalid(f"unknown method {params.method}")
    has = params.HasField
    kw: dict = {}
    if has("timeout"):
        t = _finite("timeout", params.timeout)
        if not 0 < t <= max_timeout:
            raise invalid(f"timeout must lie in (0, {max_timeout}] seconds, got {t}")
        kw["timeout"] = t
    if has("target"):
        if not 0 <= params.target < record.n_classes:
            raise invalid(f"target {params.target} is not one of the model's {record.n_classes} classes")
        kw["target"] = int(params.target)
    if has("window"):
        if not 1 <= params.window <= max(record.input_shape[-2:]):
            raise invalid(f"window must lie in [1, {max(record.input_shape[-2:])}], got {params.window}")
        kw["window"] = int(params.window)
    if has("baseline"):
        kw["baseline"] = _finite("baseline", params.baseline)
    backends = NETWORK_BACKENDS if method == "whole-network" else FIRST_LAYER_BACKENDS
    if has("backend"):
        if params.backend not in backends:
            raise invalid(f"unknown backend {params.backend!r} for {method}; choose from {backends}")
        kw["backend"] = params.backend
    if method == "whole-network":
        if not record.whole_network:
            raise invalid("this model cannot be encoded whole (only Gemm/MatMul, Conv, Relu, Flatten are)")
        if has("delta"):
            d = _finite("delta", params.delta)
            if d < 0:
                raise invalid(f"delta must be >= 0, got {d}")
            kw["delta"] = d
        if has("min_confidence"):
            p = _finite("min_confidence", params.min_confidence)
            if not 0 < p < 1:
                raise invalid(f"min_confidence must lie in (0, 1), got {p}")
            kw["min_confidence"] = p
        return method, kw
    if has("top_k"):
        if not 1 <= params.top_k <= MAX_TOP_K:
            raise invalid(f"top_k must lie in [1, {MAX_TOP_K}], got {params.top_k}")
        kw["top_k"] = int(params.top_k)
    if has("gamma"):
        g = _finite("gamma", params.gamma)
        if not 0 <= g < 1:
            raise invalid(f"gamma must lie in [0, 1), got {g}")
        kw["gamma"] = g
    if has("form"):
        if params.form not in FORMS:
            raise invalid(f"form must be one of {FORMS}, got {params.form!r}")
        kw["form"] = params.form
    if has("ig_steps"):
        if not 1 <= params.ig_steps <= MAX_IG_STEPS:
            raise invalid(f"ig_steps must lie in [1, {MAX_IG_STEPS}], got {params.ig_steps}")
        kw["ig_steps"] = int(params.ig_steps)
    return method, kw


def model_info(pb, rec):
    return pb.ModelInfo(id=rec.id, aliases=list(rec.aliases), input_shape=list(rec.input_shape),
                        n_classes=rec.n_classes, description=rec.description, zoo=rec.zoo,
                        size_bytes=rec.size_bytes, whole_network=rec.whole_network)


def explain_response(pb, e, request_id: str, model_id: str, extra_timings: dict):
    """``Explanation`` -> ``ExplainResponse`` (arrays as tensors, everything else in result_json)."""
    from smug.clients.result import jsonable

    c = e.certificate or {}
    cert = pb.CertificateSummary(valid=bool(c.get("valid", False)), mask_size=int(c.get("mask_size") or 0),
                                 constraints=int(c.get("constraints") or 0), n_violated=int(c.get("n_violated") or 0),
                                 min_slack=float(c["min_slack"]) if c.get("min_slack") is not None else 0.0,
                                 checked=str(c.get("checked", "")), seconds=float(c.get("seconds") or 0.0))
    timings = {k: float(v) for k, v in {**e.timings, **extra_timings}.items()}
    r = pb.ExplainResponse(
        request_id=request_id, status=e.status, lower_bound=int(e.lower_bound), n_blocks=int(e.n_blocks),
        proof=e.proof, target=int(e.target), target_name=str(e.target_name), confidence=float(e.confidence),
        mask=to_tensor(pb, e.mask), pixel_mask=to_tensor(pb, e.pixel_mask),
        saliency=to_tensor(pb, np.asarray(e.saliency, np.float32)), certificate=cert, timings=timings,
        model_id=model_id, result_json=json.dumps(e.to_json(), default=jsonable),
        base_mask=to_tensor(pb, e.base_mask), base_saliency=to_tensor(pb, np.asarray(e.base_saliency, np.float32)),
        image=to_tensor(pb, e.image),
    )
    if e.objective is not None:
        r.objective = int(e.objective)
    return r
