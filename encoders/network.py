"""Whole-network encoding (paper 003 Sec. 3.1 / Appendix A) of an ONNX ReLU network.

The graph is walked from the input to the logits; supported nodes are Gemm, MatMul
(+Add), Conv (with Pad before and BatchNormalization after it folded in), Relu,
Flatten/Reshape to a vector, Identity and Dropout.  Every linear layer becomes a
sparse matrix over the flattened activations, so the result is a plain
:class:`~smug.ir.NetworkProblem` that any backend can consume.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from smug.encoders.blocks import BlockGrid
from smug.encoders.config import NetworkConfig
from smug.encoders.first_layer import UnsupportedModel, add_pad, conv_layer, dense_layer, OnnxGraph
from smug.ir import DenseLayer, NetworkProblem
from smug.models.runtime import OnnxModel

SKIP = {"Identity", "Dropout"}
FLATTEN = {"Flatten", "Reshape"}
LINEAR = {"Conv", "Gemm", "MatMul"}
# every ONNX op the walk below reads, directly or as a constant folded into a layer
SUPPORTED_OPS = frozenset(SKIP | FLATTEN | LINEAR | {"Pad", "Relu", "Add", "BatchNormalization", "Constant", "Shape",
                                                      "Gather", "Unsqueeze", "Concat"})


def unsupported_ops(model: OnnxModel) -> list[str]:
    """The op types of ``model`` the whole-network encoding cannot read (empty: it may encode it)."""
    return sorted({n.op_type for n in model.proto.graph.node} - SUPPORTED_OPS)


def network_layers(model: OnnxModel) -> tuple[DenseLayer, ...]:
    """The model as a chain of dense layers (conv layers unrolled to sparse matrices)."""
    g = OnnxGraph(model)
    tensor, shape = model.input_name, tuple(model.input_shape)
    pads = [0, 0, 0, 0]
    layers: list[DenseLayer] = []
    while tensor != model.output_name:
        node = g.only_consumer(tensor)
        if node is None:
            raise UnsupportedModel(f"tensor '{tensor}' does not feed exactly one node")
        op = node.op_type
        if op in SKIP:
            tensor = node.output[0]
        elif op in FLATTEN:
            shape, tensor = (int(np.prod(shape)),), node.output[0]
        elif op == "Pad":
            pads, tensor = add_pad(g, node, pads, len(shape)), node.output[0]
        elif op in LINEAR:
            if op == "Conv":
                layer = conv_layer(g, node, pads, shape)
            else:
                if any(pads):
                    raise UnsupportedModel("padding before a dense layer is not supported")
                layer = dense_layer(g, node, shape)
            pads = [0, 0, 0, 0]
            if layer.activation not in ("Relu", "none"):
                raise UnsupportedModel(f"activation {layer.activation} after '{node.name}': only Relu is encoded")
            W = layer.rows(np.arange(layer.n_neurons))
            bias = layer.bias[np.unravel_index(np.arange(layer.n_neurons), layer.output_shape)[0]]
            layers.append(DenseLayer(sp.csr_matrix(W), np.asarray(bias, dtype=np.float64), layer.activation == "Relu"))
            tensor, shape = layer.activation_tensor, tuple(layer.output_shape)
        else:
            raise UnsupportedModel(f"'{op}' ({node.name}) is not supported by the whole-network encoding")
    if not layers:
        raise UnsupportedModel("no linear layer between the input and the logits")
    return tuple(layers)


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
