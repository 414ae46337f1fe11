"""Paper 004's input measures: input alignment (Def. 1, Eq. 1) and Key Information
Sufficiency (KIS, Eq. 20).

* ``alignment(R, x) = <R, x> / (||R|| ||x||)``: the cosine between an attribution and
  the input, over all entries.  An (H, W) map against a (C, H, W) input is broadcast
  over the channels first.
* KIS: with ``A_L`` the input features of the last linear layer (Gemm or MatMul) and
  ``v_k`` that layer's weights of class ``k``::

      S = 1 - ||v_k * A_L^* - v_k * A_L||_1 / ||v_k * A_L||_1          (Eq. 20)

  where ``*`` products are elementwise and ``A_L^*`` are the features of the
  normalised attribution ``R~ = (R - min R)(max x - min x)/(max R - min R) + min x``
  fed to the model as an input.  ``S = 1`` when ``R~ = x`` (e.g. ``R = x``).  A
  constant ``R`` maps to ``min x`` everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from smug.models.runtime import OnnxModel


def _broadcast(r: np.ndarray, x: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    x = np.asarray(x)
    if r.shape == x.shape:
        return r
    if x.ndim == 3 and r.shape == x.shape[1:]:
        return np.broadcast_to(r[None], x.shape)
    raise ValueError(f"attribution of shape {r.shape} fits neither the input {x.shape} nor its (H, W)")


def alignment(r: np.ndarray, x: np.ndarray) -> float:
    """Paper 004 Eq. 1: cosine of the attribution and the input (0 if either is 0)."""
    x = np.asarray(x, dtype=np.float64)
    r = _broadcast(r, x)
    nr, nx = np.linalg.norm(r), np.linalg.norm(x)
    if nr == 0 or nx == 0:
        return 0.0
    return float(np.sum(r * x) / (nr * nx))


def normalise_to_input(r: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``R~`` of Eq. 20: ``R`` min-max rescaled into the input's range [min x, max x]."""
    x = np.asarray(x, dtype=np.float64)
    r = _broadcast(r, x)
    lo, hi = float(r.min()), float(r.max())
    if hi == lo:
        return np.full(x.shape, float(x.min()))
    return (r - lo) * (float(x.max()) - float(x.min())) / (hi - lo) + float(x.min())


@dataclass(frozen=True)
class LastLinear:
    """The last Gemm/MatMul of an ONNX classifier: its input tensor and class weights (classes, features)."""

    features: str
    weight: np.ndarray


def last_linear(model: OnnxModel) -> LastLinear:
    """Find the last Gemm or MatMul whose weight is an initializer."""
    inits = {i.name: i for i in model.proto.graph.initializer}
    for node in reversed(model.proto.graph.node):
        if node.op_type not in ("Gemm", "MatMul"):
            continue
        a, b = node.input[0], node.input[1]
        if b not in inits:
            continue
        w = onnx.numpy_helper.to_array(inits[b]).astype(np.float64)
        attrs = {t.name: onnx.helper.get_attribute_value(t) for t in node.attribute}
        if node.op_type == "Gemm" and attrs.get("transA", 0):
            raise ValueError("KIS: a Gemm with transA=1 is not supported")
        trans_b = node.op_type == "Gemm" and attrs.get("transB", 0)
        weight = w if trans_b else w.T
        if node.op_type == "Gemm":
            weight = weight * float(attrs.get("alpha", 1.0))
        return LastLinear(a, weight)
    raise ValueError("KIS needs a last linear layer (Gemm or MatMul with an initializer weight); none found")


def features(model: OnnxModel, layer: LastLinear, batch: np.ndarray) -> np.ndarray:
    """``A_L`` for a batch of inputs, flattened to (N, features)."""
    a = model.tensors(np.asarray(batch, dtype=np.float32), [layer.features])[layer.features]
    return a.reshape(len(a), -1).astype(np.float64)


class KIS:
    """Paper 004 Eq. 20; ``KIS()(model, x, attribution, target) -> float``."""

    def __call__(self, model: OnnxModel, x: np.ndarray, attribution: np.ndarray, target: int | None = None) -> float:
        x, target = model.checked_input(x, target)
        layer = last_linear(model)
        r_tilde = normalise_to_input(attribution, x).astype(np.float32)
        a = features(model, layer, np.stack([x, r_tilde]))
        v = layer.weight[target]
        if v.shape[0] != a.shape[1]:
            raise ValueError(f"KIS: last layer weights have {v.shape[0]} inputs, features have {a.shape[1]}")
        base = v * a[0]
        den = float(np.abs(base).sum())
        if den == 0:
            raise ValueError("KIS undefined: v_k * A_L is zero for this input")
        return 1.0 - float(np.abs(v * a[1] - base).sum()) / den
