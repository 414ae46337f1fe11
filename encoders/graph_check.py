"""A rigorous check of a whole-network answer against the ONNX graph itself (issue 31 item 2).

What the exact certificate checks is the *lowered* network (:mod:`smug.encoders.network`): a
chain of dense layers whose weights are float64 products of the graph's (Conv composed with
BatchNormalization, ``scale / sqrt(var + eps)``, AveragePool's ``1 / k``, MaxPool's differences),
each rounded once.  Those rounded numbers are the lowered network's exact rational semantics;
the graph's semantics is the real-number evaluation of its own nodes with its stored weights.
They can differ by the roundings of the lowering, so a near-tie could be decided differently.

This module closes the gap for one input: it walks the graph node by node in float64 and keeps,
for every tensor, a value ``v`` and a radius ``r`` with ``|exact - v| <= r`` elementwise, where
``exact`` is the graph's real semantics.  Each linear node adds Higham's a-priori bound
``gamma_{n+2} (|K| |v| + |k|)`` and the relative error of its own rounded coefficients
(``sqrt`` and ``/`` are correctly rounded: ``4u`` covers BatchNormalization's scale); ReLU and
MaxPool are 1-Lipschitz in each entry, so the radius passes through them (a window's largest).
If every margin's lower end is above ``delta``, the mask keeps the class for the graph as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from smug.common import U, gamma
from smug.encoders import ops
from smug.encoders.first_layer import OnnxGraph, UnsupportedModel, node_attributes
from smug.models.runtime import OnnxModel

SAFETY = 1.0 + 1e-6  # the rounding of the radii themselves
TINY = 1e-300  # underflow of any one sum


@dataclass(frozen=True)
class Enclosure:
    """A tensor of the graph: ``|exact - value| <= radius`` elementwise (flattened, with its shape)."""

    value: np.ndarray
    radius: np.ndarray
    shape: tuple[int, ...]

    def linear(self, K: sp.csr_matrix, k: np.ndarray | float, shape, rel: float = 0.0,
               k_abs: np.ndarray | float = 0.0) -> "Enclosure":
        """``K v + k`` where the float ``K`` is within ``rel`` (relative) of the exact map and ``k``
        within ``k_abs`` of the exact offset."""
        K = sp.csr_matrix(K)
        K_abs = abs(K)
        k = np.broadcast_to(np.asarray(k, np.float64), (K.shape[0],))
        n = int(np.diff(K.indptr).max(initial=0)) + 2
        terms = K_abs @ np.abs(self.value) + np.abs(k)
        radius = (1 + rel) * (K_abs @ self.radius) + rel * terms + k_abs + gamma(n) * terms
        return Enclosure(K @ self.value + k, SAFETY * radius + TINY, tuple(shape))


@dataclass(frozen=True)
class GraphMargins:
    """Rigorous bounds of ``logit[target] - logit[j]`` (every ``j`` but the target) under the
    graph's real semantics, for one input."""

    lower: np.ndarray
    upper: np.ndarray
    radius: float  # the largest logit radius: how far the float64 walk may be from the graph

    def keeps(self, delta: float) -> bool:
        return bool(np.all(self.lower > delta))

    def summary(self, delta: float) -> dict:
        return {"keeps_class": self.keeps(delta), "margin_lower": float(self.lower.min(initial=np.inf)),
                "logit_radius": self.radius,
                "checked": "the ONNX graph's own nodes in float64 with a rigorous error radius per tensor"}


def _data_tensors(graph, input_name: str) -> set[str]:
    data = {input_name}
    for node in graph.node:
        if node.op_type not in {"Shape", "Size"} and any(i in data for i in node.input):
            data.add(node.output[0])
    return data


class _Walk:
    """One enclosure walk of the graph (the module docstring)."""

    def __init__(self, model: OnnxModel):
        self.g = OnnxGraph(model)

    def const(self, node, index: int) -> np.ndarray | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        return np.asarray(self.g.value(node.input[index]), np.float64)

    def run(self, model: OnnxModel, x: np.ndarray) -> Enclosure:
        flat = np.asarray(x, np.float64).ravel()
        data = _data_tensors(self.g.graph, model.input_name)
        live = {model.input_name: Enclosure(flat, np.zeros_like(flat), tuple(model.input_shape))}
        for node in self.g.graph.node:
            if node.op_type in {"Shape", "Size"} or not any(i in data for i in node.input):
                continue
            step = getattr(self, f"_{node.op_type.lower()}", None)
            if step is None:
                raise UnsupportedModel(f"'{node.op_type}' ({node.name}) is not supported by the graph check")
            ins = [live.get(i) for i in node.input]
            live[node.output[0]] = step(node, ins, node_attributes(node))
        return live[model.output_name]

    def _identity(self, node, ins, a) -> Enclosure:
        return ins[0]

    _dropout = _identity

    def _flatten(self, node, ins, a) -> Enclosure:
        t = ins[0]
        return Enclosure(t.value, t.radius, (int(np.prod(t.shape)),))

    def _reshape(self, node, ins, a) -> Enclosure:
        t = ins[0]
        return Enclosure(t.value, t.radius, ops.reshaped(self.g.value(node.input[1]), t.shape, node.name))

    def _conv(self, node, ins, a) -> Enclosure:
        K, k, shape = ops.conv_map(self.const(node, 1), self.const(node, 2), a, ins[0].shape, node.name)
        return ins[0].linear(K, k, shape)

    def _gemm(self, node, ins, a) -> Enclosure:
        K, k = ops.gemm_map(self.const(node, 1), self.const(node, 2), a, ins[0].shape[0], node.name)
        scaled = float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0
        return ins[0].linear(K, k, (K.shape[0],), rel=U if scaled else 0.0, k_abs=U * np.abs(k) if scaled else 0.0)

    def _matmul(self, node, ins, a) -> Enclosure:
        B = self.const(node, 1)
        return ins[0].linear(sp.csr_matrix(B.T), 0.0, (B.shape[1],))

    def _batchnormalization(self, node, ins, a) -> Enclosure:
        scale, shift, mean, var = (self.const(node, i) for i in range(1, 5))
        K, k = ops.batchnorm_map(scale, shift, mean, var, float(a.get("epsilon", 1e-5)), ins[0].shape)
        s = K.diagonal()
        per = len(s) // len(mean)
        s_mean = np.abs(s) * np.abs(np.repeat(mean, per))
        k_abs = 4 * U * s_mean + 2 * U * (np.abs(np.repeat(shift, per)) + s_mean)
        return ins[0].linear(K, k, ins[0].shape, rel=4 * U, k_abs=k_abs)

    def _averagepool(self, node, ins, a) -> Enclosure:
        cand, shape = ops.pool_windows(a, ins[0].shape, node.name)
        K = ops.average_map(cand, bool(a.get("count_include_pad", 0)), cand.shape[1], len(ins[0].value))
        return ins[0].linear(K, 0.0, shape, rel=U)

    def _globalaveragepool(self, node, ins, a) -> Enclosure:
        K, shape = ops.global_average_map(ins[0].shape)
        return ins[0].linear(K, 0.0, shape, rel=U)

    def _pad(self, node, ins, a) -> Enclosure:
        value = self.const(node, 2)
        value = np.asarray(a.get("value", 0.0)) if value is None else value  # opset <= 10: an attribute
        if a.get("mode", b"constant") not in (b"constant", "constant") or np.any(value != 0) \
                or self.const(node, 3) is not None:
            raise UnsupportedModel(f"'{node.name}': only zero padding of all axes is read by the graph check")
        pads = self.const(node, 1) if len(node.input) > 1 and node.input[1] else np.asarray(a.get("pads"))
        K, shape = ops.pad_map(pads.astype(np.int64), ins[0].shape, node.name)
        return ins[0].linear(K, 0.0, shape)

    def _add(self, node, ins, a, sign: float = 1.0) -> Enclosure:
        x, y = ins
        if x is not None and y is not None:
            value, radius = x.value + sign * y.value, x.radius + y.radius
        else:
            t = x if x is not None else y
            c = np.broadcast_to(self.const(node, 1 if x is not None else 0), (1,) + t.shape).ravel()
            value = t.value + sign * c if x is not None else c + sign * t.value  # t +- c, or c +- t
            radius = t.radius
        shape = (x if x is not None else y).shape
        return Enclosure(value, SAFETY * (radius + U * np.abs(value)) + TINY, shape)

    def _sub(self, node, ins, a) -> Enclosure:
        return self._add(node, ins, a, -1.0)

    def _relu(self, node, ins, a) -> Enclosure:
        t = ins[0]
        return Enclosure(np.maximum(t.value, 0.0), t.radius, t.shape)

    def _maxpool(self, node, ins, a) -> Enclosure:
        t = ins[0]
        cand, shape = ops.pool_windows(a, t.shape, node.name)
        valid = cand >= 0
        at = np.where(valid, cand, 0)
        value = np.where(valid, t.value[at], -np.inf).max(axis=1)
        radius = np.where(valid, t.radius[at], 0.0).max(axis=1)
        return Enclosure(value, radius, shape)


def graph_margins(model: OnnxModel, x: np.ndarray, target: int) -> GraphMargins:
    """Rigorous margins of the graph's own semantics at the model-space input ``x``."""
    out = _Walk(model).run(model, x)
    v, r = out.value, out.radius
    others = np.array([j for j in range(len(v)) if j != target])
    centre = v[target] - v[others]
    width = SAFETY * (r[target] + r[others] + 2 * U * (np.abs(v[target]) + np.abs(v[others]))) + TINY
    return GraphMargins(np.nextafter(centre - width, -np.inf), np.nextafter(centre + width, np.inf), float(r.max()))
