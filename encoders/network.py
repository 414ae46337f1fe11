"""Whole-network encoding (paper 003 Sec. 3.1 / Appendix A) of an ONNX ReLU network.

The graph is read node by node (in its topological order) and lowered, exactly, to a
chain of dense ReLU layers (:class:`~smug.ir.NetworkProblem`), so every backend and the
exact certificate read one plain form:

* linear nodes (Conv, Gemm, MatMul, BatchNormalization, AveragePool,
  GlobalAveragePool, Pad, Add/Sub of tensors or constants, Flatten, Reshape, Identity,
  Dropout) are composed into one affine map from the last ReLU layer's units;
* ``Relu`` emits a ReLU layer;
* ``MaxPool`` is exact: ``max(a, b) = b + relu(a - b)``, one ReLU layer per halving of
  the window's candidates (a 2x2 window: 3 ReLUs, each one binary in the MILP unless the
  solver's bounds prove that a candidate never beats the other, which prunes it);
* a tensor still needed later (a residual branch, the other half of a max) is carried
  through each new ReLU layer: ``relu(t) = t`` for a tensor known to be >= 0 (any ReLU
  output), else ``t = relu(t) - relu(-t)``.

Any other node is refused with its name and op type.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from smug.encoders import ops
from smug.encoders.blocks import BlockGrid
from smug.encoders.config import NetworkConfig
from smug.encoders.first_layer import OnnxGraph, UnsupportedModel, node_attributes
from smug.ir import DenseLayer, NetworkProblem
from smug.models.runtime import OnnxModel

SHAPE_ONLY = {"Shape", "Size"}  # read only a tensor's shape
CONSTANT_OPS = {"Constant", "Gather", "Unsqueeze", "Concat", "Squeeze", "Cast"}  # allowed on shapes and constants only
DATA_OPS = {"Conv", "Gemm", "MatMul", "BatchNormalization", "AveragePool", "GlobalAveragePool", "Pad", "Add", "Sub",
            "Flatten", "Reshape", "Identity", "Dropout", "Relu", "MaxPool"}
# every ONNX op the lowering reads (the last group only on constants and shapes)
SUPPORTED_OPS = frozenset(DATA_OPS | SHAPE_ONLY | CONSTANT_OPS)


#: the largest lowering the whole-network encoding attempts: ReLU units (MaxPool's comparisons
#: included) and multiply-adds of its linear maps per input.  mnist-cnn has 4,232 and 66,800;
#: torchvision's ResNet-18 at 224 px has 3.9 million and 1.8 billion (its lowering grew past 13 GB).
MAX_RELU_UNITS = 50_000
MAX_MULTIPLY_ADDS = 20_000_000


@dataclass(frozen=True)
class NetworkSize:
    """What the lowering of a model would hold, from the graph's shapes alone (nothing built)."""

    relu_units: int
    multiply_adds: int

    def within_budget(self) -> bool:
        return self.relu_units <= MAX_RELU_UNITS and self.multiply_adds <= MAX_MULTIPLY_ADDS


def network_size(model: OnnxModel) -> NetworkSize:
    """:class:`NetworkSize` of ``model`` by ONNX shape inference on a light copy of its graph (large
    weights replaced by their declared shapes): each Relu's units, each MaxPool's ``k - 1``
    comparisons per output, each Conv / Gemm / MatMul's multiply-adds."""
    import onnx

    g = model.proto.graph
    small = [i for i in g.initializer if int(np.prod(i.dims)) <= 4096]  # shapes, axes: inference reads them
    large = [onnx.helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in g.initializer
             if int(np.prod(i.dims)) > 4096]
    light = onnx.helper.make_model(onnx.helper.make_graph(list(g.node), "size", list(g.input) + large, list(g.output),
                                                          small), opset_imports=list(model.proto.opset_import))
    light.ir_version = model.proto.ir_version
    inferred = onnx.shape_inference.infer_shapes(light)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    shapes.update({i.name: list(i.dims) for i in g.initializer})
    units = macs = 0
    for node in g.node:
        out = shapes.get(node.output[0], [])
        numel = int(np.prod([d for d in out[1:] if d > 0])) if len(out) > 1 else 0
        if node.op_type == "Relu":
            units += numel
        elif node.op_type == "MaxPool":
            units += numel * (int(np.prod(node_attributes(node).get("kernel_shape", [1]))) - 1)
        elif node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1:
            w = [d for d in shapes.get(node.input[1], []) if d > 0]
            macs += numel * int(np.prod(w[1:])) if node.op_type == "Conv" else int(np.prod(w))
    return NetworkSize(int(units), int(macs))


def check_budget(model: OnnxModel) -> None:
    """Refuse (:class:`UnsupportedModel`, one line naming the model and its size) a model whose
    lowering would exceed :data:`MAX_RELU_UNITS` or :data:`MAX_MULTIPLY_ADDS`."""
    size = network_size(model)
    if not size.within_budget():
        raise UnsupportedModel(
            f"'{model.name}' is beyond the whole-network encoding's budget: {size.relu_units:,} ReLU units and "
            f"{size.multiply_adds:,} multiply-adds (at most {MAX_RELU_UNITS:,} and {MAX_MULTIPLY_ADDS:,}); "
            "explain it with the first-layer method (smug explain without --whole-network)")


def unsupported_ops(model: OnnxModel) -> list[str]:
    """The op types of ``model`` the whole-network encoding cannot read (empty: it may encode it)."""
    return sorted({n.op_type for n in model.proto.graph.node} - SUPPORTED_OPS)


@dataclass(frozen=True)
class _Tensor:
    """A tensor of one input as ``M h + c`` over the current units ``h`` (the last ReLU layer's
    outputs, or the flattened input before the first one)."""

    M: sp.csr_matrix
    c: np.ndarray
    shape: tuple[int, ...]
    nonneg: bool  # >= 0 for every input (a ReLU output, or padded, pooled or averaged from one)


def _select(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((vals, (rows, cols)), shape=shape)


class _Lowering:
    """One walk of the graph (see the module docstring)."""

    def __init__(self, model: OnnxModel):
        self.g = OnnxGraph(model)
        n = int(np.prod(model.input_shape))
        self.width = n
        self.layers: list[DenseLayer] = []
        self.live = {model.input_name: _Tensor(sp.identity(n, format="csr"), np.zeros(n), tuple(model.input_shape),
                                               False)}
        self.data = {model.input_name}
        self.uses: Counter[str] = Counter({model.output_name: 1})
        for node in self.g.graph.node:
            if node.op_type in SHAPE_ONLY or not any(i in self.data for i in node.input):
                continue
            self.data.add(node.output[0])
            self.uses.update(i for i in node.input if i in self.data)

    def run(self, output: str) -> tuple[DenseLayer, ...]:
        for node in self.g.graph.node:
            reads = [i for i in node.input if i in self.data]
            if node.op_type in SHAPE_ONLY or not reads:
                continue
            if node.op_type not in DATA_OPS:
                raise UnsupportedModel(f"'{node.op_type}' ({node.name}) is not supported by the whole-network encoding")
            ins = [self.live[i] if i in self.data else None for i in node.input]
            for i in reads:  # what this node reads is no longer needed unless a later node reads it too
                self.uses[i] -= 1
                if self.uses[i] == 0:
                    self.live.pop(i, None)
            out = getattr(self, f"_{node.op_type.lower()}")(node, ins, node_attributes(node))
            if self.uses[node.output[0]] > 0:
                self.live[node.output[0]] = out
        if output not in self.data:
            raise UnsupportedModel("the logits do not depend on the input")
        t = self.live[output]
        self.layers.append(DenseLayer(t.M.tocsr(), np.asarray(t.c, np.float64), False))
        return tuple(self.layers)

    # ------------------------------------------------------------------ helpers
    def const(self, node, index: int) -> np.ndarray | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        if node.input[index] in self.data:
            raise UnsupportedModel(f"'{node.name}' ({node.op_type}): input {index} must be a constant")
        return np.asarray(self.g.value(node.input[index]), np.float64)

    @staticmethod
    def affine(t: _Tensor, K: sp.spmatrix, k: np.ndarray | float, shape, nonneg: bool = False) -> _Tensor:
        return _Tensor(sp.csr_matrix(K @ t.M), K @ t.c + k, tuple(shape), nonneg)

    def relu_layer(self, rows: sp.csr_matrix, bias: np.ndarray) -> sp.csr_matrix:
        """Append a ReLU layer over ``rows h + bias`` (and the carried units of every live tensor);
        returns the new units as rows over the new ``h``."""
        n_new = rows.shape[0]
        used = np.unique(np.concatenate([t.M.indices for t in self.live.values()] + [np.zeros(0, np.int64)]))
        u = len(used)
        if self.layers:  # h are ReLU outputs (>= 0): relu(h_j) = h_j
            carry = _select(np.arange(u), used, np.ones(u), (u, self.width))
            back = _select(used, n_new + np.arange(u), np.ones(u), (self.width, n_new + u))
        else:  # the input may be negative: v = relu(v) - relu(-v)
            carry = _select(np.arange(2 * u), np.repeat(used, 2), np.tile([1.0, -1.0], u), (2 * u, self.width))
            back = _select(np.repeat(used, 2), n_new + np.arange(2 * u), np.tile([1.0, -1.0], u),
                           (self.width, n_new + 2 * u))
        weight = sp.vstack([sp.csr_matrix(rows), carry]).tocsr()
        self.layers.append(DenseLayer(weight, np.concatenate([np.asarray(bias, np.float64), np.zeros(carry.shape[0])]),
                                      True))
        self.width = weight.shape[0]
        self.live = {k: _Tensor(sp.csr_matrix(t.M @ back), t.c, t.shape, t.nonneg) for k, t in self.live.items()}
        return _select(np.arange(n_new), np.arange(n_new), np.ones(n_new), (n_new, self.width))

    # ------------------------------------------------------------------ nodes
    def _identity(self, node, ins, a) -> _Tensor:
        return ins[0]

    _dropout = _identity

    def _flatten(self, node, ins, a) -> _Tensor:
        if int(a.get("axis", 1)) != 1:
            raise UnsupportedModel(f"'{node.name}': Flatten must keep the batch axis (axis=1)")
        t = ins[0]
        return _Tensor(t.M, t.c, (int(np.prod(t.shape)),), t.nonneg)

    def _reshape(self, node, ins, a) -> _Tensor:
        t = ins[0]
        return _Tensor(t.M, t.c, ops.reshaped(self.g.value(node.input[1]), t.shape, node.name), t.nonneg)

    def _conv(self, node, ins, a) -> _Tensor:
        K, k, shape = ops.conv_map(self.const(node, 1), self.const(node, 2), a, ins[0].shape, node.name)
        return self.affine(ins[0], K, k, shape)

    def _gemm(self, node, ins, a) -> _Tensor:
        t = self.vector(node, ins[0])
        K, k = ops.gemm_map(self.const(node, 1), self.const(node, 2), a, t.shape[0], node.name)
        return self.affine(t, K, k, (K.shape[0],))

    def _matmul(self, node, ins, a) -> _Tensor:
        t = self.vector(node, ins[0])
        B = self.const(node, 1)
        if B.ndim != 2 or B.shape[0] != t.shape[0]:
            raise UnsupportedModel(f"'{node.name}': MatMul with a {B.shape} matrix does not fit {t.shape[0]} inputs")
        return self.affine(t, sp.csr_matrix(B.T), 0.0, (B.shape[1],))

    def vector(self, node, t: _Tensor) -> _Tensor:
        if len(t.shape) != 1:
            raise UnsupportedModel(f"'{node.name}' ({node.op_type}) reads a {t.shape} tensor: Flatten it first")
        return t

    def _batchnormalization(self, node, ins, a) -> _Tensor:
        if a.get("training_mode", 0):
            raise UnsupportedModel(f"'{node.name}': BatchNormalization in training mode is not supported")
        scale, shift, mean, var = (self.const(node, i) for i in range(1, 5))
        K, k = ops.batchnorm_map(scale, shift, mean, var, float(a.get("epsilon", 1e-5)), ins[0].shape)
        return self.affine(ins[0], K, k, ins[0].shape)

    def _averagepool(self, node, ins, a) -> _Tensor:
        t = ins[0]
        cand, shape = ops.pool_windows(a, t.shape, node.name)
        K = ops.average_map(cand, bool(a.get("count_include_pad", 0)), cand.shape[1], t.M.shape[0])
        return self.affine(t, K, 0.0, shape, t.nonneg)

    def _globalaveragepool(self, node, ins, a) -> _Tensor:
        K, shape = ops.global_average_map(ins[0].shape)
        return self.affine(ins[0], K, 0.0, shape, ins[0].nonneg)

    def _pad(self, node, ins, a) -> _Tensor:
        mode = a.get("mode", b"constant")
        if mode not in (b"constant", "constant"):
            raise UnsupportedModel(f"'{node.name}': only constant (zero) Pad is supported")
        pads = self.const(node, 1) if len(node.input) > 1 and node.input[1] else np.asarray(a.get("pads"))
        value = self.const(node, 2)
        value = np.asarray(a.get("value", 0.0)) if value is None else value  # opset <= 10: an attribute
        if np.any(value != 0) or self.const(node, 3) is not None:
            raise UnsupportedModel(f"'{node.name}': only zero padding of all axes is supported")
        K, shape = ops.pad_map(pads.astype(np.int64), ins[0].shape, node.name)
        return self.affine(ins[0], K, 0.0, shape, ins[0].nonneg)

    def _add(self, node, ins, a, sign: float = 1.0) -> _Tensor:
        x, y = ins
        if x is not None and y is not None:
            if x.shape != y.shape:
                raise UnsupportedModel(f"'{node.name}': {node.op_type} of tensors shaped {x.shape} and {y.shape}")
            return _Tensor(sp.csr_matrix(x.M + sign * y.M), x.c + sign * y.c, x.shape,
                           x.nonneg and y.nonneg and sign > 0)
        t = x if x is not None else y
        c = np.broadcast_to(self.const(node, 1 if x is not None else 0), (1,) + t.shape).ravel()
        if x is not None:  # t + c, t - c
            return _Tensor(t.M, t.c + sign * c, t.shape, t.nonneg and sign * c.min(initial=0) >= 0)
        return _Tensor(sp.csr_matrix(sign * t.M), c + sign * t.c, t.shape, False)  # c + t, c - t

    def _sub(self, node, ins, a) -> _Tensor:
        return self._add(node, ins, a, -1.0)

    def _relu(self, node, ins, a) -> _Tensor:
        t = ins[0]
        if t.nonneg:
            return t
        return _Tensor(self.relu_layer(t.M, t.c), np.zeros(t.M.shape[0]), t.shape, True)

    def _maxpool(self, node, ins, a) -> _Tensor:
        """Exact max of each window: ``max(a, b) = b + relu(a - b)``, halving the candidates per ReLU layer."""
        if len(node.output) > 1 and node.output[1]:
            raise UnsupportedModel(f"'{node.name}': MaxPool indices are not supported")
        t = ins[0]
        cand, shape = ops.pool_windows(a, t.shape, node.name)
        E, e = t.M, t.c
        lists = [[int(i) for i in row if i >= 0] for row in cand]
        sign = [1.0] if t.nonneg else [1.0, -1.0]  # how a carried item passes a ReLU
        while any(len(l) > 1 for l in lists):
            first, second, single = [], [], []
            for l in lists:
                first += l[0:len(l) - 1:2]
                second += l[1::2]
                if len(l) % 2:
                    single.append(l[-1])
            A, B, O = (np.asarray(v, np.int64) for v in (first, second, single))
            rows = [E[A] - E[B]] + [s * E[B] for s in sign] + [s * E[O] for s in sign]
            bias = [e[A] - e[B]] + [s * e[B] for s in sign] + [s * e[O] for s in sign]
            units = self.relu_layer(sp.vstack(rows).tocsr(), np.concatenate(bias))
            p, o = len(A), len(O)
            # item of a pair: relu(a - b) + b; of a single: the single
            comb_r, comb_c, comb_v = [np.arange(p)], [np.arange(p)], [np.ones(p)]
            for j, s in enumerate(sign):
                comb_r += [np.arange(p), p + np.arange(o)]
                comb_c += [p + j * p + np.arange(p), p * (1 + len(sign)) + j * o + np.arange(o)]
                comb_v += [np.full(p, s), np.full(o, s)]
            comb = _select(np.concatenate(comb_r), np.concatenate(comb_c), np.concatenate(comb_v),
                           (p + o, units.shape[0]))
            E, e = sp.csr_matrix(comb @ units), np.zeros(p + o)
            pi = oi = 0
            new_lists = []
            for l in lists:
                n_pairs = len(l) // 2
                items = list(range(pi, pi + n_pairs))
                pi += n_pairs
                if len(l) % 2:
                    items.append(p + oi)
                    oi += 1
                new_lists.append(items)
            lists = new_lists
        top = np.asarray([l[0] for l in lists], np.int64)
        return _Tensor(sp.csr_matrix(E[top]), e[top], shape, t.nonneg)


def network_layers(model: OnnxModel) -> tuple[DenseLayer, ...]:
    """The model as an exact chain of dense ReLU layers (see the module docstring); cached per model.
    A model beyond the budget (:func:`check_budget`) is refused before anything is built."""

    def build() -> tuple[DenseLayer, ...]:
        check_budget(model)
        return _Lowering(model).run(model.output_name)

    return model.derived("network_layers", build)


def encode_network(
    model: OnnxModel, x: np.ndarray, window: int = 1, delta: float = 0.0, baseline: float = 0.0,
    target: int | None = None, layers: tuple[DenseLayer, ...] | None = None, min_confidence: float | None = None,
    config: NetworkConfig | None = None,
) -> NetworkProblem:
    """Eq. 6: the mask over ``window`` blocks whose masked input keeps ``target`` (default: prediction).

    The parameters come either as the keywords ``window``, ``delta``, ``baseline`` and
    ``min_confidence`` (checked as :class:`NetworkConfig` checks them) or as one
    ``config``; giving ``config`` together with a non-default keyword is an error.

    ``min_confidence = p`` adds a sufficient linear condition for softmax(target) >= p:
    every margin ``logit[t] - logit[j] >= log((C - 1) p / (1 - p))`` gives
    ``softmax_t = 1 / (1 + sum_j e^{-margin_j}) >= p``.  It is folded into ``delta``."""
    keywords = NetworkConfig(window=window, delta=delta, baseline=baseline, min_confidence=min_confidence)
    if config is None:
        config = keywords
    elif keywords != NetworkConfig():
        raise TypeError("encode_network takes either config or the window/delta/baseline/min_confidence keywords")
    x, target = model.checked_input(x, target)
    layers = layers or network_layers(model)
    delta = config.delta
    if config.min_confidence is not None:
        p, classes = config.min_confidence, layers[-1].weight.shape[0]
        delta = max(delta, float(np.log((classes - 1) * p / (1 - p))) + 1e-12)
    grid = BlockGrid(model.input_shape, config.window)
    flat = x.astype(np.float64).ravel()
    return NetworkProblem(
        layers=layers, x=flat, baseline=np.full_like(flat, config.baseline), group=grid.group(),
        var_names=grid.names(), target=int(target), delta=float(delta),
    )


def check_network_against_runtime(model: OnnxModel, problem: NetworkProblem, inputs: np.ndarray) -> float:
    """Max |float64 forward of the encoding - onnxruntime logits| over a batch of inputs."""
    inputs = np.asarray(inputs, dtype=np.float32)
    ours = np.stack([problem.forward(v.ravel()) for v in inputs])
    return float(np.abs(ours - model.logits(inputs)).max())
