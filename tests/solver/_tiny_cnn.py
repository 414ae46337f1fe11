"""Tiny random CNNs (Conv -> BatchNorm -> Relu -> MaxPool -> [Conv -> Relu] -> Flatten -> Gemm) as
whole-network problems for the solver tests, built as ONNX graphs and encoded by smug."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from smug.encoders.network import encode_network
from smug.ir import NetworkProblem
from smug.models.runtime import OnnxModel


def tiny_cnn(seed: int, size: int = 6, channels: int = 2, classes: int = 3, second_conv: bool = False) -> OnnxModel:
    r = np.random.default_rng(seed)
    f = lambda *s: r.normal(size=s).astype(np.float32)
    pooled = (size - 2) // 2
    nodes = [helper.make_node("Conv", ["x", "W", "b"], ["z"]),
             helper.make_node("BatchNormalization", ["z", "s", "t", "m", "v"], ["zb"]),
             helper.make_node("Relu", ["zb"], ["a"]),
             helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2])]
    inits = {"W": f(channels, 1, 3, 3), "b": f(channels) * 0.3, "s": r.uniform(0.5, 1.5, channels).astype(np.float32),
             "t": f(channels) * 0.3, "m": f(channels) * 0.3, "v": r.uniform(0.5, 2, channels).astype(np.float32)}
    last, width = "p", channels * pooled * pooled
    if second_conv:
        nodes += [helper.make_node("Conv", ["p", "V"], ["z2"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["z2"], ["a2"])]
        inits["V"] = f(channels, channels, 3, 3)
        last = "a2"
    nodes += [helper.make_node("Flatten", [last], ["flat"]), helper.make_node("Gemm", ["flat", "G", "g"], ["y"], transB=1)]
    inits.update(G=f(classes, width), g=f(classes))
    graph = helper.make_graph(nodes, "tiny-cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return OnnxModel.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), f"tiny-cnn-{seed}")


def tiny_cnn_problem(seed: int, window: int = 2, delta: float | None = 0.0, **kw) -> NetworkProblem:
    """A tiny CNN on a random non-negative image, masks over ``window`` blocks (masked-out value 0);
    ``delta=None``: half the full image's smallest logit margin (the blank image rarely keeps that)."""
    model = tiny_cnn(seed, **kw)
    x = np.random.default_rng(100 + seed).uniform(0, 1, model.input_shape).astype(np.float32)
    x[x < 0.3] = 0.0
    if delta is None:
        z = model.logits(x[None])[0].astype(np.float64)
        delta = 0.5 * float(np.sort(z.max() - z)[1])
    return encode_network(model, x, window=window, delta=delta)
