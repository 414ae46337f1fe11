"""Model re-initialisation and the parameter-randomisation sanity check.

:func:`randomized` returns a *new* :class:`OnnxModel` (the user's model is never
touched) whose Conv / Gemm / MatMul weights -- all of them, or the top ``n`` in
graph order -- are redrawn (biases of redrawn layers set to 0):

* ``gaussian``: i.i.d. normal entries with the layer's own weight standard deviation;
* ``ring``: each output neuron's weight vector gets a uniformly random direction and
  a norm uniform in [0.9, 1.1] times the Gaussian's expected norm (isotropic, not
  Gaussian: paper 004 Fig. 3 middle);
* ``uniform``: i.i.d. uniform entries in [-a, a], ``a = sqrt(3) std`` (same variance
  as the Gaussian; not isotropic: paper 004 Fig. 3 bottom, which draws from [-1, 1]
  -- rescaled here so that ReLU6 units do not all saturate).

:func:`parameter_randomisation` (Adebayo et al. 2018, paper 004 Sec. IV): the map's
Spearman rank correlation (of absolute values) with the original map after
randomising the top 1, 2, ... layers cumulatively, top down.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import numpy_helper

from smug.models.runtime import OnnxModel

SCHEMES = ("gaussian", "ring", "uniform")


def weight_layers(proto: onnx.ModelProto) -> list[tuple[str, str | None]]:
    """(weight initializer, bias initializer or None) of each Conv/Gemm/MatMul, graph order."""
    inits = {i.name for i in proto.graph.initializer}
    out = []
    for node in proto.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in inits:
            bias = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
            out.append((node.input[1], bias))
    return out


def _draw(w: np.ndarray, scheme: str, rng: np.random.Generator, transposed: bool) -> np.ndarray:
    std = float(w.std()) or 1.0
    if scheme == "gaussian":
        return rng.normal(0.0, std, size=w.shape)
    if scheme == "uniform":
        a = np.sqrt(3.0) * std
        return rng.uniform(-a, a, size=w.shape)
    if scheme == "ring":
        rows = w.T if transposed else w  # one row per output neuron
        flat = rows.reshape(rows.shape[0], -1)
        d = rng.normal(size=flat.shape)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        norms = std * np.sqrt(flat.shape[1]) * rng.uniform(0.9, 1.1, size=(flat.shape[0], 1))
        new = (d * norms).reshape(rows.shape)
        return new.T if transposed else new
    raise ValueError(f"unknown scheme '{scheme}': choose one of {list(SCHEMES)}")


def randomized(model: OnnxModel, scheme: str = "gaussian", top: int | None = None, seed: int = 0) -> OnnxModel:
    """A copy of ``model`` with its top ``top`` weight layers (default: all) redrawn."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme '{scheme}': choose one of {list(SCHEMES)}")
    proto = copy.deepcopy(model.proto)
    layers = weight_layers(proto)
    if top is None:
        top = len(layers)
    if not 0 <= int(top) <= len(layers):
        raise ValueError(f"top must be in 0..{len(layers)}, got {top}")
    chosen = layers[len(layers) - int(top):]
    rng = np.random.default_rng(seed)
    inits = {i.name: i for i in proto.graph.initializer}
    # weights stored as (inputs, outputs): MatMul, and Gemm without transB
    matmul = {n.input[1] for n in proto.graph.node if n.op_type == "MatMul" or (
        n.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in n.attribute))}
    for wname, bname in chosen:
        w = numpy_helper.to_array(inits[wname])
        new = _draw(w.astype(np.float64), scheme, rng, transposed=wname in matmul).astype(w.dtype)
        inits[wname].CopyFrom(numpy_helper.from_array(new, wname))
        if bname is not None:
            b = numpy_helper.to_array(inits[bname])
            inits[bname].CopyFrom(numpy_helper.from_array(np.zeros_like(b), bname))
    return OnnxModel.from_proto(proto, f"{model.name}-{scheme}-top{top}")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (flattened)."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def parameter_randomisation(model: OnnxModel, x: np.ndarray, target: int, method: str, steps: list[int],
                            scheme: str = "gaussian", seed: int = 0, **params) -> dict[int, float]:
    """Spearman(|map|, |map after randomising the top n layers|) for each n in ``steps``."""
    from smug.baselines.attribution import attribute

    ref = np.abs(attribute(model, x, target, method, **params).map)
    out = {}
    for n in steps:
        m = randomized(model, scheme, top=int(n), seed=seed)
        out[int(n)] = spearman(ref, np.abs(attribute(m, x, target, method, **params).map))
    return out
