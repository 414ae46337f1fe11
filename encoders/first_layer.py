"""The first linear layer of an ONNX classifier as an explicit affine map.

Walks the graph from the input through data-movement nodes (Pad, Flatten,
Reshape, Identity) to the first Conv / Gemm / MatMul, folds a following
BatchNormalization (and a MatMul's Add) into weight and bias, and records the
tensor that holds the first layer's *activations* (the output of the following
Relu / Clip / LeakyRelu, or the pre-activation itself when none follows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import scipy.sparse as sp
from onnx import numpy_helper

from smug.models.runtime import ModelError, OnnxModel

PASS_THROUGH = {"Identity", "Flatten", "Reshape", "Pad", "Cast"}
ACTIVATIONS = {"Relu", "Clip", "LeakyRelu"}
SHAPE_ONLY = {"Shape", "Size"}  # read only the shape: not part of the data path


class UnsupportedModel(ModelError):
    """The graph's first layer is not one smug can encode."""


@dataclass(frozen=True)
class FirstLayer:
    """Pre-activation ``z = W x + b`` of the first layer (BatchNorm folded).

    ``kind == "conv"``: ``weight`` is (K, C/groups, kh, kw) over an input (C, H, W)
    with total zero padding ``pads = (top, left, bottom, right)``.
    ``kind == "dense"``: ``weight`` is (K, n_inputs) over the flattened input.
    """

    kind: str
    weight: np.ndarray  # float64
    bias: np.ndarray  # float64 (K,)
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    preact_tensor: str
    activation_tensor: str
    activation: str  # ONNX op type of the activation, or "none"
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_neurons(self) -> int:
        return int(np.prod(self.output_shape))

    def neuron_position(self, index: int) -> tuple[int, ...]:
        """(channel, row, col) of a conv neuron, (unit,) of a dense one."""
        return tuple(int(i) for i in np.unravel_index(index, self.output_shape))

    def rows(self, neurons: np.ndarray) -> sp.csr_matrix:
        """The weights of the chosen neurons over the flattened input: (len, n_inputs)."""
        neurons = np.asarray(neurons, dtype=np.int64)
        if self.kind == "dense":
            return sp.csr_matrix(self.weight[neurons])
        K, cg, kh, kw = self.weight.shape
        C, H, W = self.input_shape
        ch, oy, ox = np.unravel_index(neurons, self.output_shape)
        g = ch // (K // self.groups)
        ci, ky, kx = np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij")
        ci, ky, kx = ci.ravel(), ky.ravel(), kx.ravel()
        iy = oy[:, None] * self.stride[0] - self.pads[0] + ky[None] * self.dilation[0]
        ix = ox[:, None] * self.stride[1] - self.pads[1] + kx[None] * self.dilation[1]
        cin = g[:, None] * cg + ci[None]
        vals = self.weight[ch[:, None], ci[None], ky[None], kx[None]]
        inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W) & (vals != 0)
        cols = (cin * H + iy) * W + ix
        r = np.broadcast_to(np.arange(len(neurons))[:, None], inside.shape)
        return sp.csr_matrix(
            (vals[inside], (r[inside], cols[inside])), shape=(len(neurons), self.n_inputs)
        )

    def preactivation(self, x: np.ndarray, with_bias: bool = True) -> np.ndarray:
        """All pre-activations for one input, in float64 (shape ``output_shape``)."""
        x = np.asarray(x, dtype=np.float64).reshape(self.input_shape)
        if self.kind == "dense":
            z = self.weight @ x.ravel()
        else:
            z = self._conv(x)
        return (z + self.bias.reshape((-1,) + (1,) * (z.ndim - 1)) * with_bias).reshape(
            self.output_shape
        )

    def _conv(self, x: np.ndarray) -> np.ndarray:
        K, cg, kh, kw = self.weight.shape
        _, OH, OW = self.output_shape
        t, l, b, r = self.pads
        xp = np.pad(x, ((0, 0), (t, b), (l, r)))
        out = np.zeros((K, OH, OW))
        kpg = K // self.groups
        sy, sx = self.stride
        dy, dx = self.dilation
        for g in range(self.groups):
            ks = slice(g * kpg, (g + 1) * kpg)
            for ci in range(cg):
                plane = xp[g * cg + ci]
                for ky in range(kh):
                    for kx in range(kw):
                        patch = plane[
                            ky * dy : ky * dy + sy * (OH - 1) + 1 : sy,
                            kx * dx : kx * dx + sx * (OW - 1) + 1 : sx,
                        ]
                        out[ks] += self.weight[ks, ci, ky, kx][:, None, None] * patch
        return out


def node_attributes(node: onnx.NodeProto) -> dict:
    """An ONNX node's attributes as ``name -> python value`` (ints, floats, lists,
    tensors as ``TensorProto``)."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxGraph:
    """Read-only view of an ONNX graph: consumers of each tensor and constant values."""

    def __init__(self, model: OnnxModel):
        self.model = model
        self.graph = model.proto.graph
        self.inits = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.constants: dict[str, np.ndarray] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node_attributes(node)["value"])

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        nodes = [n for n in self.consumers.get(tensor, []) if n.op_type not in SHAPE_ONLY]
        return nodes[0] if len(nodes) == 1 else None

    def value(self, name: str) -> np.ndarray:
        """A constant tensor: initializer, Constant node, or evaluated by onnxruntime."""
        if name in self.inits:
            return self.inits[name]
        if name in self.constants:
            return self.constants[name]
        dummy = np.zeros((1,) + self.model.input_shape, dtype=np.float32)
        return self.model.tensors(dummy, [name])[name]


def find_first_layer(model: OnnxModel) -> FirstLayer:
    """Locate and extract the first linear layer of ``model`` (see module docstring)."""
    g = OnnxGraph(model)
    tensor = model.input_name
    pads = [0, 0, 0, 0]
    while True:
        node = g.only_consumer(tensor)
        if node is None:
            raise UnsupportedModel(
                f"tensor '{tensor}' does not feed exactly one node; "
                "smug needs a single chain from the input to the first linear layer"
            )
        if node.op_type not in PASS_THROUGH:
            break
        if node.op_type == "Pad":
            pads = add_pad(g, node, pads, len(model.input_shape))
        if node.op_type == "Cast" and node_attributes(node).get("to") != onnx.TensorProto.FLOAT:
            raise UnsupportedModel("the input is cast to a non-float type before the first layer")
        tensor = node.output[0]

    if node.op_type == "Conv":
        layer = conv_layer(g, node, pads, model.input_shape)
    elif node.op_type in ("Gemm", "MatMul"):
        if any(pads):
            raise UnsupportedModel("padding before a dense first layer is not supported")
        layer = dense_layer(g, node, model.input_shape)
    else:
        named = f" ({node.name})" if node.name else ""
        raise UnsupportedModel(f"the input first meets '{node.op_type}'{named}, not a linear layer: smug's "
                               "first-layer method needs a Conv, Gemm or MatMul there (after Pad, Flatten, "
                               "Reshape, Identity or Cast only)")
    return layer


def check_first_layer(model: OnnxModel) -> str | None:
    """None when :func:`find_first_layer` can extract ``model``'s first layer, else
    the reason it cannot (the :class:`UnsupportedModel` message).  Other errors
    (an unreadable graph, ...) propagate."""
    try:
        find_first_layer(model)
    except UnsupportedModel as exc:
        return str(exc)
    return None


def add_pad(g: OnnxGraph, node: onnx.NodeProto, pads: list[int], rank: int) -> list[int]:
    """Accumulate a zero Pad node's spatial padding (top, left, bottom, right)."""
    a = node_attributes(node)
    if a.get("mode", b"constant") not in (b"constant", "constant"):
        raise UnsupportedModel("only constant (zero) padding before the first layer is supported")
    p = np.asarray(g.value(node.input[1]) if len(node.input) > 1 else a["pads"], dtype=np.int64)
    if len(node.input) > 2 and node.input[2]:
        if float(np.asarray(g.value(node.input[2])).ravel()[0]) != 0.0:
            raise UnsupportedModel("padding with a non-zero constant is not supported")
    if len(node.input) > 3 and node.input[3]:
        raise UnsupportedModel("Pad with explicit axes is not supported")
    full = rank + 1
    begin, end = p[:full], p[full:]
    if rank != 3 or begin[:2].any() or end[:2].any() or (p < 0).any():
        raise UnsupportedModel("only non-negative spatial padding of a (C, H, W) input is supported")
    return [pads[0] + int(begin[2]), pads[1] + int(begin[3]), pads[2] + int(end[2]), pads[3] + int(end[3])]


def fold_following(g: OnnxGraph, tensor: str, weight: np.ndarray, bias: np.ndarray):
    """Fold into a linear layer's ``weight`` (output channels first) and ``bias`` the
    BatchNormalization (per output channel) or constant bias Add that alone reads
    ``tensor``.  Returns ``(tensor after the folded node, weight, bias)``; when nothing
    folds, ``(tensor, weight, bias)`` unchanged.  New arrays; the graph is not changed."""
    node = g.only_consumer(tensor)
    if node is not None and node.op_type == "BatchNormalization":
        scale, shift, mean, var = (g.value(n).astype(np.float64) for n in node.input[1:5])
        eps = float(node_attributes(node).get("epsilon", 1e-5))
        s = scale / np.sqrt(var + eps)
        weight = weight * s.reshape((-1,) + (1,) * (weight.ndim - 1))
        bias = s * (bias - mean) + shift
        return node.output[0], weight, bias
    if node is not None and node.op_type == "Add":
        other = [n for n in node.input if n != tensor]
        try:
            b = np.asarray(g.value(other[0]), dtype=np.float64)
        except Exception:
            return tensor, weight, bias
        if b.size == bias.size:
            return node.output[0], weight, bias + b.ravel()
    return tensor, weight, bias


def activation_after(g: OnnxGraph, tensor: str) -> tuple[str, str]:
    """``(output tensor, op type)`` of the activation (one of :data:`ACTIVATIONS`)
    that alone reads ``tensor``; ``(tensor, "none")`` when there is none."""
    node = g.only_consumer(tensor)
    if node is not None and node.op_type in ACTIVATIONS:
        return node.output[0], node.op_type
    return tensor, "none"


def conv_layer(g: OnnxGraph, node, pads, input_shape) -> FirstLayer:
    """A Conv node (with earlier zero padding and a following BatchNorm folded in)."""
    if len(input_shape) != 3:
        raise UnsupportedModel("a Conv first layer needs a (C, H, W) input")
    a = node_attributes(node)
    W = np.asarray(g.value(node.input[1]), dtype=np.float64)
    if W.ndim != 4:
        raise UnsupportedModel("only 2-D convolutions are supported")
    K = W.shape[0]
    b = np.asarray(g.value(node.input[2]), dtype=np.float64) if len(node.input) > 2 and node.input[2] else np.zeros(K)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise UnsupportedModel("Conv auto_pad SAME_* is not supported; export with explicit pads")
    cp = list(a.get("pads", [0, 0, 0, 0]))
    total = (pads[0] + cp[0], pads[1] + cp[1], pads[2] + cp[2], pads[3] + cp[3])
    stride = tuple(a.get("strides", [1, 1]))
    dil = tuple(a.get("dilations", [1, 1]))
    groups = int(a.get("group", 1))
    C, H, Wd = input_shape
    kh, kw = W.shape[2:]
    OH = (H + total[0] + total[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    OW = (Wd + total[1] + total[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    preact, W, b = fold_following(g, node.output[0], W, b)
    act, kind = activation_after(g, preact)
    return FirstLayer(
        kind="conv", weight=W, bias=b, input_shape=tuple(input_shape), output_shape=(K, OH, OW),
        preact_tensor=preact, activation_tensor=act, activation=kind,
        stride=stride, dilation=dil, pads=total, groups=groups,
    )


def dense_layer(g: OnnxGraph, node, input_shape) -> FirstLayer:
    """A Gemm / MatMul node (with a following bias Add or BatchNorm folded in)."""
    a = node_attributes(node)
    B = np.asarray(g.value(node.input[1]), dtype=np.float64)
    if node.op_type == "Gemm":
        if a.get("transA", 0):
            raise UnsupportedModel("Gemm with transA is not supported as a first layer")
        W = B.T if not a.get("transB", 0) else B
        W = W * float(a.get("alpha", 1.0))
        has_c = len(node.input) > 2 and node.input[2]
        b = np.asarray(g.value(node.input[2]), dtype=np.float64).ravel() * float(a.get("beta", 1.0)) if has_c else np.zeros(W.shape[0])
        if b.size == 1:
            b = np.full(W.shape[0], b[0])
    else:
        W = B.T
        b = np.zeros(W.shape[0])
    n_in = int(np.prod(input_shape))
    if W.shape[1] != n_in:
        raise UnsupportedModel(f"dense first layer expects {W.shape[1]} inputs, the model input has {n_in}")
    preact, W, b = fold_following(g, node.output[0], W, b)
    act, kind = activation_after(g, preact)
    return FirstLayer(
        kind="dense", weight=W, bias=b, input_shape=tuple(input_shape), output_shape=(W.shape[0],),
        preact_tensor=preact, activation_tensor=act, activation=kind,
    )


def check_against_runtime(model: OnnxModel, layer: FirstLayer, x: np.ndarray) -> float:
    """Max |ours - onnxruntime| of the pre-activation, relative to its max magnitude."""
    ours = layer.preactivation(x)
    theirs = model.tensors(x[None].astype(np.float32), [layer.preact_tensor])[layer.preact_tensor][0]
    theirs = theirs.reshape(ours.shape)
    return float(np.abs(ours - theirs).max() / max(1e-12, np.abs(theirs).max()))
