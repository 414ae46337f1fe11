"""The network after its first layer as dense ReLU layers in numpy: IG (paper 003 Eq. 1) without torch.

When a model lowers exactly to dense ReLU layers (:func:`~smug.encoders.network.network_layers`, the
whole-network encoding's own lowering) and the lowering's first layer *is* SMUG's first layer (its
ReLU reproduces the activation tensor IG ranks, unit for unit), the rest of the chain is the
network's tail ``T``:

    F(a) = softmax(T(a))_t,    T = L_n o relu o ... o relu o L_2,    L_l(h) = W_l h + b_l,

and ``dF/da`` is its backward pass: ``dF/dlogits = p_t (e_t - p)``, then ``W_l^T`` and each ReLU's
mask (``z > 0``, the derivative torch takes at 0 too), in float64.  For a small network this spares
importing torch at all (about 3 CPU s of a 5 s ``smug explain --model mnist-mlp``).

:func:`dense_tail` returns ``None`` (the torch tail is used) unless the activation is a ``Relu``,
the graph's ops are the lowering's, the lowering is within :data:`MAX_MULTIPLY_ADDS` and two checks
hold on two random probes: the first layer gives onnxruntime's activations and the tail gives
onnxruntime's logits from them, within :data:`~smug.models.torch_backend.TOLERANCE` (the check every
torch conversion passes).  The encoder checks the tail once more on the input it explains
(:meth:`DenseTail.logit_error`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smug.encoders.first_layer import FirstLayer, UnsupportedModel
from smug.encoders.network import network_layers, network_size, unsupported_ops
from smug.ir import DenseLayer
from smug.models.runtime import OnnxModel
from smug.models.torch_backend import TOLERANCE

#: the largest lowering (multiply-adds per input) the numpy tail is built for: lowering costs about
#: as much as importing torch from here on (mnist-mlp: 0.2 M, mnist-cnn: 0.07 M)
MAX_MULTIPLY_ADDS = 2_000_000
PATH = "dense layers in numpy (the whole-network lowering; no torch)"


@dataclass(frozen=True)
class DenseTail:
    """``F(a) = softmax(T(a))_t`` and its gradient over a batch of activations (see the module docstring)."""

    layers: tuple[DenseLayer, ...]
    max_abs_logit_error: float  # the check on onnxruntime's logits (input and probe)

    def logits(self, acts: np.ndarray) -> np.ndarray:
        """``T`` of a batch of flattened activations ``(B, n)``, float64 ``(B, classes)``."""
        return self._forward(acts)[0]

    def _forward(self, acts: np.ndarray) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """``T(acts)`` and each layer's ReLU mask (``z > 0``; None for a layer without ReLU)."""
        h = np.asarray(acts, dtype=np.float64)
        masks: list[np.ndarray | None] = []
        for layer in self.layers:
            h = np.asarray(layer.weight @ h.T).T + layer.bias
            masks.append(h > 0 if layer.relu else None)
            if layer.relu:
                h = np.maximum(h, 0.0)
        return h, masks

    def logit_error(self, acts: np.ndarray, logits: np.ndarray) -> float:
        """Max abs difference between ``T(acts)`` and onnxruntime's ``logits`` of the same inputs."""
        return float(np.abs(self.logits(np.reshape(acts, (len(logits), -1))) - logits).max())

    def probability(self, acts: np.ndarray, target: int) -> np.ndarray:
        """``F`` of each row of ``acts``: the target's softmax probability, ``(B,)``."""
        return _softmax(self.logits(acts))[:, target]

    def gradient(self, acts: np.ndarray, target: int) -> np.ndarray:
        """``dF/da`` at each row of ``acts`` ``(B, n)``, float64, by the backward pass."""
        h, masks = self._forward(acts)
        p = _softmax(h)
        g = -p[:, target, None] * p
        g[:, target] += p[:, target]
        for layer, mask in zip(reversed(self.layers), reversed(masks)):
            if mask is not None:
                g = g * mask
            g = np.asarray(layer.weight.T @ g.T).T
        return g


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dense_tail(model: OnnxModel, layer: FirstLayer) -> DenseTail | None:
    """The numpy tail of ``model`` after ``layer`` (see the module docstring), or ``None``; built once per model."""
    return model.derived(("dense_tail", layer.activation_tensor), lambda: _build(model, layer))


def _build(model: OnnxModel, layer: FirstLayer) -> DenseTail | None:
    if layer.activation != "Relu" or unsupported_ops(model):
        return None
    size = network_size(model)
    if not size.within_budget() or size.multiply_adds > MAX_MULTIPLY_ADDS:
        return None
    try:
        layers = network_layers(model)
    except (UnsupportedModel, ValueError, NotImplementedError):
        return None
    first, tail = layers[0], layers[1:]
    n = int(np.prod(layer.output_shape))
    if not first.relu or not tail or first.weight.shape[0] != n:
        return None
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.normal(size=(1, *model.input_shape)), rng.uniform(size=(1, *model.input_shape))]
                        ).astype(np.float32)
    acts = model.tensors(xs, [layer.activation_tensor])[layer.activation_tensor].reshape(len(xs), -1)
    ours = np.maximum(np.asarray(first.weight @ xs.reshape(len(xs), -1).astype(np.float64).T).T + first.bias, 0.0)
    if not np.abs(ours - acts).max() <= TOLERANCE:
        return None
    candidate = DenseTail(tail, 0.0)
    err = candidate.logit_error(acts, model.logits(xs))
    return DenseTail(tail, err) if err <= TOLERANCE else None
