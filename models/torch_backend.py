"""The ONNX -> torch conversion (the gradient path), checked against onnxruntime; torch's settings
(:func:`torch_module`, :func:`device`) are :mod:`smug.models.torch_env`'s, imported from here too."""

from __future__ import annotations

import numpy as np
import onnx

from smug.models.errors import ModelError
from smug.models.ort import fixed_batch
from smug.models.torch_env import device, torch_module  # noqa: F401 (their usual import path)

#: the gradient paths of :func:`convert`, in the order they are tried
PATHS = ("onnx2torch", "onnx2torch (raw graph)", "onnx graph evaluator")
#: a conversion is accepted when its logits on the probe are within this share of the largest logit
#: magnitude (at least 1) of onnxruntime's
TOLERANCE = 1e-3


def onnx2torch_module(proto: onnx.ModelProto):
    """onnx2torch's conversion of ``proto`` (its conversion warnings silenced: they describe its
    internals, not the user's model)."""
    import warnings

    torch_module()
    from onnx2torch import convert as _convert

    # onnx2torch's own warnings (at conversion and in its converted modules' forward passes)
    warnings.filterwarnings("ignore", category=UserWarning, module="onnx2torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _convert(proto)


def graph_module(proto: onnx.ModelProto, conv_units: bool = False):
    """smug's own evaluator of the ONNX graph (:class:`~smug.models.onnx_torch.GraphModule`)."""
    from smug.models.onnx_torch import GraphModule

    return GraphModule(proto, conv_units)


def probe_inputs(proto: onnx.ModelProto) -> list[np.ndarray]:
    """Random inputs of the graph's declared shapes (a dynamic batch: 2), for checking a conversion."""
    inits = {i.name for i in proto.graph.initializer}
    rng = np.random.default_rng(0)
    out = []
    for i in proto.graph.input:
        if i.name in inits:
            continue
        dims = i.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (2 if k == 0 else 0)
                 for k, d in enumerate(dims)]
        if not shape or 0 in shape:
            raise ModelError(f"input '{i.name}' has no declared size for a non-batch dimension")
        out.append(np.abs(rng.normal(size=shape)).astype(np.float32))
    return out


def convert(proto: onnx.ModelProto, probe: list[np.ndarray] | None = None, batch: int | None = None,
            evaluator_first: bool = False):
    """ONNX graph -> torch module (eval mode, frozen weights, on :func:`device`) that computes the
    same logits as onnxruntime.  Tried in the order of :data:`PATHS`: onnx2torch on the graph
    normalised by onnxruntime's basic optimisation (:func:`smug.models.normalise.normalised`), onnx2torch
    on the graph as given, then smug's own evaluator of the graph (no converter).  Each candidate is
    checked against onnxruntime on ``probe`` (one array per graph input; default
    :func:`probe_inputs`), max abs logit error within :data:`TOLERANCE`; the first that agrees is
    returned, its path and error kept as the module's ``smug_conversion`` dict.  For a graph with a
    fixed batch size (``batch``, default :func:`fixed_batch`) the probe has that many inputs; callers
    that batch wrap the module with :func:`chunked`.  Nothing agrees: :class:`ModelError` naming
    each path's reason.  ``evaluator_first`` (the IG tails): smug's evaluator is tried first, with its
    constant convolutions as ``Conv2d`` modules (sped up like onnx2torch's by
    :func:`~smug.models.torch_fast.fast_convert`); its pickle needs neither onnx2torch nor the
    torchvision it imports (about 3 s of a cold start)."""
    from smug.models.normalise import normalised
    from smug.models.ort import onnxruntime

    torch = torch_module()
    probe = probe_inputs(proto) if probe is None else probe
    batch = fixed_batch(proto) if batch is None else batch
    if batch is not None:
        probe = [p[:batch] for p in probe]
    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    expected = session.run(None, dict(zip(names, probe)))[0].astype(np.float64)
    try:
        simple = normalised(proto)
    except Exception:  # onnxruntime could not optimise it: the other paths read the graph as given
        simple = proto
    builders = {PATHS[0]: lambda: onnx2torch_module(simple), PATHS[1]: lambda: onnx2torch_module(proto),
                PATHS[2]: lambda: graph_module(simple, conv_units=evaluator_first)}
    order = (PATHS[2], PATHS[0], PATHS[1]) if evaluator_first else PATHS
    reasons = []
    for path in order:
        build = builders[path]
        try:
            module = build().eval().to(device())
            for p in module.parameters():
                p.requires_grad_(False)
            with torch.no_grad():
                got = module(*[torch.as_tensor(p, device=device()) for p in probe])
            got = got.double().cpu().numpy()
        except ModelError as exc:  # smug's own words (an operator the evaluator lacks, by name)
            reasons.append(f"{path}: {exc}")
            continue
        except Exception:  # a converter's failure is a reason to try the next path, not an answer
            reasons.append(f"{path}: could not convert the graph")
            continue
        error = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if error <= TOLERANCE * max(1.0, float(np.abs(expected).max())):
            module.smug_conversion = {"path": path, "probe_error": error}
            return module
        reasons.append(f"{path}: logits differ from onnxruntime's by {error:.3g}")
    raise ModelError("no torch copy of the model computes its logits, so gradients cannot be taken ("
                     + "; ".join(reasons) + ")")


def chunked(module, batch: int | None):
    """``module`` in a :class:`~smug.models.onnx_torch.BatchChunks` wrapper that runs a larger batch
    in chunks of ``batch`` inputs (a graph with that fixed batch size; None: a dynamic batch, passed
    whole) and keeps the ``smug_conversion`` record where pickling and copying keep it (torch.fx's
    GraphModule drops unknown attributes when copied)."""
    from smug.models.onnx_torch import BatchChunks

    wrapped = BatchChunks(module, batch)
    wrapped.smug_conversion = conversion_of(module)
    return wrapped


def conversion_of(module) -> dict:
    """The ``smug_conversion`` record of a module from :func:`convert` (path and probe error)."""
    return dict(getattr(module, "smug_conversion", {"path": "unknown"}))
