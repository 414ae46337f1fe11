"""ONNX operators of the whole-network encoding as maps over flattened tensors.

Each linear operator becomes ``y = K x + k`` over the flattened (C, H, W) or (n,)
tensor without its batch axis (``K`` sparse, float64); pooling windows are listed as
candidate index arrays.  Every function is pure and reads the node's attributes as
the ONNX operator specification defines them (opset <= 19).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from smug.encoders.first_layer import FirstLayer, UnsupportedModel

Shape = tuple[int, ...]


def _pairs(attrs: dict, key: str, default: int) -> tuple[int, int]:
    v = list(attrs.get(key, [default, default]))
    if len(v) != 2:
        raise UnsupportedModel(f"only 2-D {key} are supported")
    return int(v[0]), int(v[1])


def _pads(attrs: dict, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
          dil: tuple[int, int], name: str) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), explicit or from ``auto_pad``."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", "VALID"):
        p = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])] if auto == "NOTSET" else [0, 0, 0, 0]
        if len(p) != 4:
            raise UnsupportedModel(f"'{name}': only 2-D pads are supported")
        return p[0], p[1], p[2], p[3]
    total = [max(0, (math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n)
             for n, k, s, d in zip(in_hw, kernel, stride, dil)]
    first = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    return first[0], first[1], total[0] - first[0], total[1] - first[1]


def conv_map(weight: np.ndarray, bias: np.ndarray | None, attrs: dict, in_shape: Shape,
             name: str) -> tuple[sp.csr_matrix, np.ndarray, Shape]:
    """A 2-D Conv (any stride, padding, dilation, groups) as a sparse matrix over the flattened input."""
    if len(in_shape) != 3 or weight.ndim != 4:
        raise UnsupportedModel(f"'{name}': only 2-D convolutions of a (C, H, W) tensor are supported")
    K, cg, kh, kw = weight.shape
    groups = int(attrs.get("group", 1))
    if cg * groups != in_shape[0] or K % groups:
        raise UnsupportedModel(f"'{name}': weight shape {weight.shape} does not fit {in_shape} with {groups} groups")
    stride, dil = _pairs(attrs, "strides", 1), _pairs(attrs, "dilations", 1)
    pads = _pads(attrs, in_shape[1:], (kh, kw), stride, dil, name)
    oh = (in_shape[1] + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (in_shape[2] + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    b = np.zeros(K) if bias is None else np.asarray(bias, np.float64).ravel()
    layer = FirstLayer(kind="conv", weight=np.asarray(weight, np.float64), bias=b, input_shape=tuple(in_shape),
                       output_shape=(K, oh, ow), preact_tensor="", activation_tensor="", activation="none",
                       stride=stride, dilation=dil, pads=pads, groups=groups)
    return layer.rows(np.arange(layer.n_neurons)), np.repeat(b, oh * ow), (K, oh, ow)


def gemm_map(B: np.ndarray, C: np.ndarray | None, attrs: dict, n_in: int, name: str) -> tuple[sp.csr_matrix, np.ndarray]:
    """Gemm ``alpha x B' + beta C`` (x a row vector; ``B' = B`` or ``B^T`` with transB)."""
    if attrs.get("transA", 0):
        raise UnsupportedModel(f"'{name}': Gemm with transA is not supported")
    W = (B if attrs.get("transB", 0) else B.T).astype(np.float64) * float(attrs.get("alpha", 1.0))
    if W.shape[1] != n_in:
        raise UnsupportedModel(f"'{name}': Gemm expects {W.shape[1]} inputs, it gets {n_in}")
    c = np.zeros(W.shape[0]) if C is None else np.broadcast_to(
        np.asarray(C, np.float64) * float(attrs.get("beta", 1.0)), (1, W.shape[0])).ravel()
    return sp.csr_matrix(W), c


def batchnorm_map(scale, shift, mean, var, eps: float, shape: Shape) -> tuple[sp.csr_matrix, np.ndarray]:
    """Inference-mode BatchNormalization ``s (x - mean) + shift``, ``s = scale / sqrt(var + eps)``, per channel."""
    s = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    per = int(np.prod(shape[1:]))
    return sp.diags(np.repeat(s, per), format="csr"), np.repeat(np.asarray(shift, np.float64) - s * mean, per)


def pad_map(pads: np.ndarray, shape: Shape, name: str) -> tuple[sp.csr_matrix, Shape]:
    """Zero Pad of the spatial axes of a (C, H, W) tensor (ONNX pads include the batch axis)."""
    p = np.asarray(pads, np.int64).ravel()
    full = len(shape) + 1
    if len(p) != 2 * full or (p < 0).any() or p[:2].any() or p[full:full + 2].any() or len(shape) != 3:
        raise UnsupportedModel(f"'{name}': only non-negative spatial zero padding of a (C, H, W) tensor is supported")
    C, H, W = shape
    t, l, b, r = int(p[2]), int(p[3]), int(p[full + 2]), int(p[full + 3])
    out = (C, H + t + b, W + l + r)
    c, y, x = np.meshgrid(np.arange(C), np.arange(H), np.arange(W), indexing="ij")
    rows = ((c * out[1] + y + t) * out[2] + x + l).ravel()
    K = sp.csr_matrix((np.ones(C * H * W), (rows, np.arange(C * H * W))), shape=(int(np.prod(out)), C * H * W))
    return K, out


def pool_windows(attrs: dict, shape: Shape, name: str) -> tuple[np.ndarray, Shape]:
    """Candidates of each pooled output: ``(n_out, kh*kw)`` flat input indices, -1 where the window
    lies on padding (MaxPool / AveragePool with kernel, strides, pads, dilations, ceil_mode)."""
    if len(shape) != 3:
        raise UnsupportedModel(f"'{name}': only 2-D pooling of a (C, H, W) tensor is supported")
    C, H, W = shape
    kh, kw = _pairs(attrs, "kernel_shape", 1)
    stride, dil = _pairs(attrs, "strides", 1), _pairs(attrs, "dilations", 1)
    t, l, b, r = _pads(attrs, (H, W), (kh, kw), stride, dil, name)
    span = ((kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1)
    rnd = math.ceil if attrs.get("ceil_mode", 0) else math.floor
    oh = int(rnd((H + t + b - span[0]) / stride[0])) + 1
    ow = int(rnd((W + l + r - span[1]) / stride[1])) + 1
    if attrs.get("ceil_mode", 0):  # the last window must start inside the input or the left padding
        oh -= int((oh - 1) * stride[0] >= H + t)
        ow -= int((ow - 1) * stride[1] >= W + l)
    oy, ox, ky, kx = np.meshgrid(np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw), indexing="ij")
    iy = oy * stride[0] - t + ky * dil[0]
    ix = ox * stride[1] - l + kx * dil[1]
    inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
    plane = np.where(inside, iy * W + ix, -1).reshape(oh * ow, kh * kw)
    cand = np.concatenate([np.where(plane >= 0, plane + c * H * W, -1) for c in range(C)])
    return cand, (C, oh, ow)


def average_map(cand: np.ndarray, include_pad: bool, kernel_size: int, n_in: int) -> sp.csr_matrix:
    """AveragePool as a matrix: each output the mean of its candidates (or / the kernel size with
    ``count_include_pad``)."""
    valid = cand >= 0
    count = np.full(len(cand), float(kernel_size)) if include_pad else valid.sum(axis=1).astype(np.float64)
    rows = np.broadcast_to(np.arange(len(cand))[:, None], cand.shape)[valid]
    return sp.csr_matrix((1.0 / count[rows], (rows, cand[valid])), shape=(len(cand), n_in))


def global_average_map(shape: Shape) -> tuple[sp.csr_matrix, Shape]:
    """GlobalAveragePool of a (C, H, W) tensor."""
    C, per = shape[0], int(np.prod(shape[1:]))
    K = sp.csr_matrix((np.full(C * per, 1.0 / per), (np.repeat(np.arange(C), per), np.arange(C * per))),
                      shape=(C, C * per))
    return K, (C,) + (1,) * (len(shape) - 1)


def reshaped(target: np.ndarray, shape: Shape, name: str) -> Shape:
    """The shape (without batch) after Reshape to ``target`` (whose first entry is the batch)."""
    t = [int(v) for v in np.asarray(target).ravel()]
    if not t or t[0] not in (0, 1, -1):
        raise UnsupportedModel(f"'{name}': Reshape must keep the batch axis first")
    rest = [shape[i + 1 - 1] if v == 0 and i < len(shape) else v for i, v in enumerate(t[1:])]
    n = int(np.prod(shape))
    if -1 in rest:
        known = int(np.prod([v for v in rest if v != -1]))
        rest = [n // known if v == -1 else v for v in rest]
    if int(np.prod(rest)) != n or t[0] == -1 and -1 in t[1:]:
        raise UnsupportedModel(f"'{name}': Reshape to {t} does not keep the {n} values of one input")
    return tuple(rest)
