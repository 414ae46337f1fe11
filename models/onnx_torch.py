"""An ONNX graph run node by node with torch operations: gradients with no converter.

:class:`GraphModule` keeps the graph's nodes as plain data and its constants as buffers, and
its ``forward`` evaluates every node with the torch function of the same meaning (the ONNX
operator specification), so ``torch.autograd`` differentiates the user's graph as it is.  It is
the last path of :func:`smug.models.torch_backend.convert`, taken when onnx2torch cannot convert
a graph (an operator version it does not know, ``Reshape(allowzero=1)`` of the dynamo exporter,
...).  Operators outside :data:`OPS` are refused up front by name (:class:`UnsupportedOp`).
The module is picklable (cached on disk like a converted one).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from smug.models.errors import ModelError
from smug.models.torch_env import torch_module

torch = torch_module()  # imported only where gradients are needed (torch on purpose)
F = torch.nn.functional

_DTYPES = {
    onnx.TensorProto.FLOAT: torch.float32, onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.FLOAT16: torch.float16, onnx.TensorProto.BFLOAT16: torch.bfloat16,
    onnx.TensorProto.INT64: torch.int64, onnx.TensorProto.INT32: torch.int32, onnx.TensorProto.INT16: torch.int16,
    onnx.TensorProto.INT8: torch.int8, onnx.TensorProto.UINT8: torch.uint8, onnx.TensorProto.BOOL: torch.bool,
}


class UnsupportedOp(ModelError):
    """The graph has an operator :class:`GraphModule` does not evaluate."""


def _attr(a: onnx.AttributeProto):
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, onnx.TensorProto):
        return torch.as_tensor(np.array(numpy_helper.to_array(v)))
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (onnx.GraphProto, list)) and v and isinstance(v[0] if isinstance(v, list) else v,
                                                                     onnx.GraphProto):
        raise UnsupportedOp("graphs with subgraphs (If, Loop, Scan) are not supported")
    return list(v) if isinstance(v, list) else v


def _ints(t) -> list[int]:
    return [int(v) for v in (t.reshape(-1).tolist() if torch.is_tensor(t) else t)]


def _pads_torch(pads: list[int]) -> list[int]:
    """ONNX pads (all begins, then all ends) -> torch's F.pad order (last axis first)."""
    n = len(pads) // 2
    out = []
    for i in reversed(range(n)):
        out += [pads[i], pads[i + n]]
    return out


def _spatial_pads(x, a: dict, kernel: list[int], strides: list[int], dilations: list[int]) -> list[int]:
    auto = a.get("auto_pad", "NOTSET")
    n = len(kernel)
    if auto in ("NOTSET", "VALID"):
        return list(a.get("pads", [0] * 2 * n)) if auto == "NOTSET" else [0] * 2 * n
    begins, ends = [], []
    for i in range(n):
        size = x.shape[2 + i]
        out = math.ceil(size / strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return begins + ends


def _conv(x, w, b=None, **a):
    n = w.dim() - 2
    strides, dil = list(a.get("strides", [1] * n)), list(a.get("dilations", [1] * n))
    pads = _spatial_pads(x, a, list(w.shape[2:]), strides, dil)
    if pads[:n] == pads[n:]:
        padding = pads[:n]
    else:
        x, padding = F.pad(x, _pads_torch([0, 0] + pads[:n] + [0, 0] + pads[n:])), [0] * n
    fn = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return fn(x, w, b, strides, padding, dil, int(a.get("group", 1)))


def _pool(x, kind: str, a: dict):
    k = list(a["kernel_shape"])
    n = len(k)
    strides, dil = list(a.get("strides", [1] * n)), list(a.get("dilations", [1] * n))
    pads = _spatial_pads(x, a, k, strides, dil)
    ceil = bool(a.get("ceil_mode", 0))
    if kind == "max":
        if pads[:n] != pads[n:] or any(p > kk // 2 for p, kk in zip(pads[:n], k)):
            x = F.pad(x, _pads_torch([0, 0] + pads[:n] + [0, 0] + pads[n:]), value=-math.inf)
            pads = [0] * 2 * n
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
        return fn(x, k, strides, pads[:n], dil, ceil_mode=ceil)
    include = bool(a.get("count_include_pad", 0))
    if pads[:n] != pads[n:] or any(p > kk // 2 for p, kk in zip(pads[:n], k)):
        if not include:
            ones = F.pad(torch.ones_like(x[:1, :1]), _pads_torch([0, 0] + pads[:n] + [0, 0] + pads[n:]))
            x = F.pad(x, _pads_torch([0, 0] + pads[:n] + [0, 0] + pads[n:]))
            fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
            return fn(x, k, strides, 0, ceil) / fn(ones, k, strides, 0, ceil)
        x, pads = F.pad(x, _pads_torch([0, 0] + pads[:n] + [0, 0] + pads[n:])), [0] * 2 * n
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
    return fn(x, k, strides, pads[:n], ceil, include)


def _axes(ins: list, a: dict, index: int = 1):
    if len(ins) > index and ins[index] is not None:
        return _ints(ins[index])
    return a.get("axes")


def _reduce(fn):
    def op(x, *rest, **a):
        axes = _axes([x, *rest], a)
        keep = bool(a.get("keepdims", 1))
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        return fn(x, [int(v) % x.dim() for v in axes], keep)

    return op


def _reduce_max(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = x.amax(dim=d, keepdim=keep)
    return x


def _slice(x, starts, ends, axes=None, steps=None):
    starts, ends = _ints(starts), _ints(ends)
    axes = list(range(len(starts))) if axes is None else _ints(axes)
    steps = [1] * len(starts) if steps is None else _ints(steps)
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax %= x.dim()
        idx = range(*slice(s, e, st).indices(x.shape[ax]))
        if st == 1:
            x = x.narrow(ax, idx.start, len(idx))
        else:
            x = x.index_select(ax, torch.as_tensor(list(idx), dtype=torch.long, device=x.device))
    return x


def _reshape(x, shape, **a):
    dims = _ints(shape)
    if not a.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _split(x, split=None, **a):
    axis = int(a.get("axis", 0)) % x.dim()
    sizes = _ints(split) if split is not None else a.get("split")
    if sizes is None:
        n = int(a["num_outputs"] if "num_outputs" in a else a["_outputs"])
        size = -(-x.shape[axis] // n)
        sizes = [min(size, x.shape[axis] - i * size) for i in range(n)]
    return tuple(torch.split(x, list(sizes), dim=axis))


def _squeeze(x, axes=None, **a):
    axes = _ints(axes) if axes is not None else a.get("axes")
    if axes is None:
        return x.squeeze()
    for d in sorted((int(v) % x.dim() for v in axes), reverse=True):
        x = x.squeeze(d)
    return x


def _unsqueeze(x, axes=None, **a):
    axes = _ints(axes) if axes is not None else list(a["axes"])
    rank = x.dim() + len(axes)
    for d in sorted(int(v) % rank for v in axes):
        x = x.unsqueeze(d)
    return x


def _clip(x, lo=None, hi=None, **a):
    lo = a.get("min") if lo is None else lo
    hi = a.get("max") if hi is None else hi
    if lo is not None:
        x = torch.maximum(x, torch.as_tensor(lo, dtype=x.dtype, device=x.device))
    if hi is not None:
        x = torch.minimum(x, torch.as_tensor(hi, dtype=x.dtype, device=x.device))
    return x


def _gemm(A, B, C=None, **a):
    A = A.t() if a.get("transA", 0) else A
    B = B.t() if a.get("transB", 0) else B
    y = float(a.get("alpha", 1.0)) * (A @ B)
    return y if C is None else y + float(a.get("beta", 1.0)) * C


def _div(x, y, **a):
    if not x.dtype.is_floating_point and not y.dtype.is_floating_point:
        return torch.div(x, y, rounding_mode="trunc")
    return x / y


def _pad(x, pads=None, value=None, axes=None, **a):
    pads = _ints(pads) if pads is not None else list(a["pads"])
    if axes is not None:
        full = [0] * (2 * x.dim())
        ax = [int(v) % x.dim() for v in _ints(axes)]
        for i, d in enumerate(ax):
            full[d], full[d + x.dim()] = pads[i], pads[i + len(ax)]
        pads = full
    mode = a.get("mode", "constant")
    tp = _pads_torch(pads)
    while len(tp) > 2 and tp[-1] == 0 and tp[-2] == 0 and mode != "constant":
        tp = tp[:-2]  # reflect / replicate pad only the trailing (spatial) axes in torch
    fill = 0.0 if value is None or value.numel() == 0 else float(value.reshape(-1)[0])
    if mode == "constant":
        return F.pad(x, tp, value=fill)
    return F.pad(x, tp, mode={"reflect": "reflect", "edge": "replicate", "wrap": "circular"}[mode])


def _layer_norm(x, scale, bias=None, **a):
    axis = int(a.get("axis", -1)) % x.dim()
    return F.layer_norm(x, x.shape[axis:], scale, bias, float(a.get("epsilon", 1e-5)))


def _gather(x, idx, **a):
    axis = int(a.get("axis", 0)) % x.dim()
    idx = idx.long()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = x.index_select(axis, idx.reshape(-1))
    return out.reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1:])


def _constant(**a):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in a:
            v = a[key]
            dtype = torch.float32 if "float" in key else torch.long
            return v if torch.is_tensor(v) else torch.as_tensor(v, dtype=dtype)
    raise UnsupportedOp("Constant without a value")


def _constant_of_shape(shape, **a):
    v = a.get("value", torch.zeros(1))
    return torch.full(_ints(shape), v.reshape(-1)[0].item(), dtype=v.dtype, device=shape.device)


def _shape(x, **a):
    s = torch.as_tensor(list(x.shape), dtype=torch.long, device=x.device)
    return s[int(a.get("start", 0)): a.get("end")]


def _softmax(fn):
    return lambda x, **a: fn(x, dim=int(a.get("axis", -1)))


def _variadic(fn):
    def op(*xs, **a):
        out = xs[0]
        for y in xs[1:]:
            out = fn(out, y)
        return out

    return op


def _range(start, limit, delta, **a):
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device)


def _expand(x, shape, **a):
    dims = _ints(shape)
    target = torch.broadcast_shapes(tuple(x.shape), tuple(dims))
    return x.expand(target)


def _hard_sigmoid(x, **a):
    return torch.clamp(float(a.get("alpha", 0.2)) * x + float(a.get("beta", 0.5)), 0, 1)


def _flatten(x, **a):
    axis = int(a.get("axis", 1)) % max(1, x.dim())
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def _batch_norm(x, scale, bias, mean, var, **a):
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, float(a.get("epsilon", 1e-5)))


#: ONNX op type -> torch function of (inputs..., **attributes)
OPS = {
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "Gemm": _gemm,
    "MatMul": lambda x, y, **a: x @ y,
    "Relu": lambda x, **a: F.relu(x),
    "LeakyRelu": lambda x, **a: F.leaky_relu(x, float(a.get("alpha", 0.01))),
    "Elu": lambda x, **a: F.elu(x, float(a.get("alpha", 1.0))),
    "Sigmoid": lambda x, **a: torch.sigmoid(x),
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": lambda x, **a: x * torch.clamp(x / 6 + 0.5, 0, 1),
    "Tanh": lambda x, **a: torch.tanh(x),
    "Erf": lambda x, **a: torch.erf(x),
    "Gelu": lambda x, **a: F.gelu(x, approximate=a.get("approximate", "none")),
    "Softplus": lambda x, **a: F.softplus(x),
    "Clip": _clip,
    "Softmax": _softmax(torch.softmax),
    "LogSoftmax": _softmax(torch.log_softmax),
    "Exp": lambda x, **a: torch.exp(x),
    "Log": lambda x, **a: torch.log(x),
    "Sqrt": lambda x, **a: torch.sqrt(x),
    "Reciprocal": lambda x, **a: 1 / x,
    "Neg": lambda x, **a: -x,
    "Abs": lambda x, **a: x.abs(),
    "Pow": lambda x, y, **a: torch.pow(x, y),
    "Add": lambda x, y, **a: x + y,
    "Sub": lambda x, y, **a: x - y,
    "Mul": lambda x, y, **a: x * y,
    "Div": _div,
    "Max": _variadic(torch.maximum),
    "Min": _variadic(torch.minimum),
    "Sum": _variadic(torch.add),
    "Equal": lambda x, y, **a: x == y,
    "Less": lambda x, y, **a: x < y,
    "Greater": lambda x, y, **a: x > y,
    "Not": lambda x, **a: ~x,
    "Where": lambda c, x, y, **a: torch.where(c.bool(), x, y),
    "MaxPool": lambda x, **a: _pool(x, "max", a),
    "AveragePool": lambda x, **a: _pool(x, "avg", a),
    "GlobalAveragePool": lambda x, **a: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "GlobalMaxPool": lambda x, **a: _reduce_max(x, list(range(2, x.dim())), True),
    "ReduceMean": _reduce(lambda x, d, k: x.mean(dim=d, keepdim=k)),
    "ReduceSum": _reduce(lambda x, d, k: x.sum(dim=d, keepdim=k)),
    "ReduceMax": _reduce(_reduce_max),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": lambda x, **a: x.permute(*(a.get("perm") or reversed(range(x.dim())))),
    "Concat": lambda *xs, **a: torch.cat(xs, dim=int(a["axis"])),
    "Split": _split,
    "Slice": lambda x, *r, **a: _slice(x, *r) if r else _slice(x, a["starts"], a["ends"], a.get("axes")),
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Gather": _gather,
    "Shape": _shape,
    "Size": lambda x, **a: torch.as_tensor(x.numel(), dtype=torch.long),
    "Cast": lambda x, **a: x.to(_DTYPES[int(a["to"])]),
    "Identity": lambda x, **a: x,
    "Dropout": lambda x, *r, **a: x,
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Expand": _expand,
    "Tile": lambda x, reps, **a: x.repeat(*_ints(reps)),
    "Range": _range,
    "Pad": _pad,
    "LayerNormalization": _layer_norm,
}


def _conv_unit(ins: list[str], attrs: dict, consts: dict):
    """A frozen ``torch.nn.Conv2d`` for a 2-D ``Conv`` node whose weights (and bias) are constants and
    whose padding is explicit (uneven padding first by a ``ZeroPad2d``); None otherwise (the node
    stays :func:`_conv`)."""
    w = consts.get(ins[1]) if len(ins) > 1 else None
    b = consts.get(ins[2]) if len(ins) > 2 and ins[2] else None
    if w is None or w.dim() != 4 or (len(ins) > 2 and ins[2] and b is None) or not w.is_floating_point():
        return None
    auto = attrs.get("auto_pad", "NOTSET")
    if auto not in ("NOTSET", "VALID"):
        return None
    pads = list(attrs.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
    even = pads[:2] == pads[2:]
    groups = int(attrs.get("group", 1))
    co, cig, kh, kw = w.shape
    conv = torch.nn.Conv2d(cig * groups, co, (kh, kw), stride=tuple(attrs.get("strides", (1, 1))),
                           padding=tuple(pads[:2]) if even else 0, dilation=tuple(attrs.get("dilations", (1, 1))),
                           groups=groups, bias=b is not None).to(w.dtype)
    with torch.no_grad():
        conv.weight.copy_(w)
        if b is not None:
            conv.bias.copy_(b)
    conv.requires_grad_(False)
    # ONNX pads: (top, left, bottom, right); ZeroPad2d: (left, right, top, bottom)
    return conv if even else torch.nn.Sequential(torch.nn.ZeroPad2d((pads[1], pads[3], pads[0], pads[2])), conv)


def _unit(op: str, ins: list[str], attrs: dict, consts: dict, conv_units: bool = False):
    """The torch module that runs a ReLU-like node -- ``Relu``, or ``Clip`` whose lower bound is the
    constant 0: ``ReLU``, ``ReLU6`` or ``Hardtanh(0, max)`` -- so that the baselines that hook
    ReLU-like modules (Guided Backprop, RectGrad, cascades) find them; with ``conv_units``, also a
    constant 2-D convolution (:func:`_conv_unit`, for :func:`smug.models.torch_fast.onednn_convs`);
    None for any other node."""
    if op == "Conv":
        return _conv_unit(ins, attrs, consts) if conv_units else None
    if op == "Relu":
        return torch.nn.ReLU()
    if op != "Clip":
        return None

    def bound(index: int, key: str):
        if len(ins) > index and ins[index]:
            value = consts.get(ins[index])
            return "unknown" if value is None else float(value.reshape(-1)[0])
        return attrs.get(key)

    lo, hi = bound(1, "min"), bound(2, "max")
    if lo != 0 or hi == "unknown":
        return None
    if hi is None:
        return torch.nn.ReLU()
    return torch.nn.ReLU6() if hi == 6 else torch.nn.Hardtanh(0.0, float(hi))


class GraphModule(torch.nn.Module):
    """``proto``'s graph evaluated with :data:`OPS` (one input tensor per graph input, in order;
    the first graph output returned).  Constants are buffers; nodes are plain tuples, except that
    ReLU-like nodes (and with ``conv_units`` constant convolutions) run as modules (:func:`_unit`, in
    ``units`` in the order of the nodes).  It references no converter's classes, so a pickled copy
    loads with torch alone."""

    def __init__(self, proto: onnx.ModelProto, conv_units: bool = False):
        super().__init__()
        g = proto.graph
        missing = sorted({n.op_type for n in g.node if n.domain not in ("", "ai.onnx") or n.op_type not in OPS})
        if missing:
            raise UnsupportedOp(f"operators {', '.join(missing)} are not supported by smug's ONNX evaluator")
        self.const_names: list[str] = []
        for i, init in enumerate(g.initializer):
            self.register_buffer(f"c{i}", torch.as_tensor(np.array(numpy_helper.to_array(init))))
            self.const_names.append(init.name)
        inits = set(self.const_names)
        self.inputs = [i.name for i in g.input if i.name not in inits]
        self.output = g.output[0].name
        self.nodes = []
        self.units = torch.nn.ModuleList()
        self.node_units: list[int | None] = []  # per node: its index in ``units``, or None
        consts = {name: getattr(self, f"c{i}") for i, name in enumerate(self.const_names)}
        attr_tensors = 0
        for n in g.node:
            attrs = {}
            for a in n.attribute:
                v = _attr(a)
                if torch.is_tensor(v):
                    self.register_buffer(f"a{attr_tensors}", v)
                    v = ("buffer", f"a{attr_tensors}")
                    attr_tensors += 1
                attrs[a.name] = v
            if n.op_type == "Split":
                attrs["_outputs"] = len(n.output)
            unit = _unit(n.op_type, list(n.input), attrs, consts, conv_units)
            if unit is not None:
                self.units.append(unit)
            self.node_units.append(None if unit is None else len(self.units) - 1)
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))
        last = {name: i for i, (_, ins, _, _) in enumerate(self.nodes) for name in ins if name}
        self.release: list[list[str]] = [[] for _ in self.nodes]  # per node: tensors read for the last time
        for name, i in last.items():
            if name != self.output and name not in inits:
                self.release[i].append(name)

    def forward(self, *args):
        env = {name: getattr(self, f"c{i}") for i, name in enumerate(self.const_names)}
        env.update(zip(self.inputs, args))
        for (op, ins, outs, attrs), unit, done in zip(self.nodes, self.node_units, self.release):
            if unit is not None:
                env[outs[0]] = self.units[unit](env[ins[0]])
            else:
                a = {k: getattr(self, v[1]) if isinstance(v, tuple) and v and v[0] == "buffer" else v
                     for k, v in attrs.items()}
                xs = [env[i] if i else None for i in ins]
                while xs and xs[-1] is None:
                    xs.pop()
                out = OPS[op](*xs, **a)
                if isinstance(out, tuple):
                    env.update(zip(outs, out))
                else:
                    env[outs[0]] = out
            for name in done:  # freed as soon as no node reads it (autograd keeps what it needs)
                env.pop(name, None)
        return env[self.output]


class BatchChunks(torch.nn.Module):
    """``module`` for a graph with a fixed batch size ``size``: a larger batch runs in chunks of
    ``size`` (every input split along its first axis), the outputs concatenated.  ``size`` None:
    ``module`` as it is (a dynamic batch)."""

    def __init__(self, module, size: int | None):
        super().__init__()
        self.module, self.size = module, None if size is None else int(size)

    def forward(self, *args):
        n = args[0].shape[0]
        if self.size is None or n <= self.size:
            return self.module(*args)
        return torch.cat([self.module(*(a[i : i + self.size] for a in args)) for i in range(0, n, self.size)])
