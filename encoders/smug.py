"""SMUG encoding (paper 003, Sec. 3.2-3.3): IG-ranked first-layer neurons -> Eq. 3."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from smug.encoders.blocks import BlockGrid
from smug.encoders.dense_tail import PATH as DENSE_PATH, dense_tail
from smug.encoders.config import FORMS, SmugConfig, check_encoding_parameters  # noqa: F401 (re-exported)
from smug.encoders.first_layer import FirstLayer, find_first_layer
from smug.encoders.ig import IGResult, NumpyProbability, auto_integrated_gradients, integrated_gradients
from smug.ir import MaskProblem
from smug.models.runtime import OnnxModel
from smug.models.torch_backend import TOLERANCE

@dataclass(frozen=True)
class SmugEncoding:
    problem: MaskProblem
    grid: BlockGrid
    layer: FirstLayer
    target: int
    neurons: np.ndarray  # top-k kept neurons (flat index), by decreasing attribution
    attribution: np.ndarray  # their IG attributions
    constrained: np.ndarray  # the kept neurons that got a constraint (positive original value)
    ig: IGResult
    gradients: dict = field(default_factory=dict)  # the numpy tail's entry of encoding.gradients, when IG used it


def select_top_k(attribution: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the k largest *positive* attributions, largest first."""
    flat = np.asarray(attribution, dtype=np.float64).ravel()
    order = np.argsort(-flat, kind="stable")
    positive = order[flat[order] > 0]
    return positive[:k]


def build_problem(
    layer: FirstLayer,
    x: np.ndarray,
    neurons: np.ndarray,
    grid: BlockGrid,
    gamma: float,
    form: str = "linear",
    baseline: float = 0.0,
) -> tuple[MaskProblem, np.ndarray]:
    """Eq. 3 for the given neurons; rows only for neurons whose original value is > 0."""
    x = np.asarray(x, dtype=np.float64).ravel()
    rows = layer.rows(neurons)
    bias = layer.bias[np.unravel_index(neurons, layer.output_shape)[0]] if form == "affine" else np.zeros(len(neurons))
    original = rows @ x + bias
    keep = original > 0
    names = []
    for n in np.asarray(neurons)[keep]:
        pos = layer.neuron_position(int(n))
        names.append("neuron " + ("ch{}_r{}_c{}".format(*pos) if len(pos) == 3 else f"unit{pos[0]}"))
    problem = MaskProblem(
        weights=rows[keep],
        bias=bias[keep],
        x=x,
        baseline=np.full_like(x, baseline),
        group=grid.group(),
        gamma=float(gamma),
        var_names=grid.names(),
        constraint_names=tuple(names),
    )
    return problem, np.asarray(neurons)[keep]


def target_probability(model: OnnxModel, layer: FirstLayer, x: np.ndarray, target: int):
    """torch function: first-layer activations (B, ...) -> softmax probability of target."""
    from smug.models.torch_backend import device, torch_module

    torch = torch_module()
    tail = model.torch_tail(layer.activation_tensor)
    xin = torch.as_tensor(np.asarray(x, dtype=np.float32)[None], device=device())

    def prob(a):
        return torch.softmax(tail(a, xin.expand((a.shape[0],) + tuple(xin.shape[1:]))), dim=1)[:, target]

    return prob


def ig_probability(model: OnnxModel, layer: FirstLayer, x: np.ndarray, activation: np.ndarray, target: int
                   ) -> tuple[object, dict]:
    """What IG differentiates: the numpy tail (:mod:`smug.encoders.dense_tail`) when the network has one
    and it gives onnxruntime's logits on ``x`` too, else the torch tail (:func:`target_probability`);
    with the numpy tail's ``encoding.gradients`` entry (empty for torch: the model reports its own)."""
    tail = dense_tail(model, layer)
    if tail is not None:
        err = tail.logit_error(activation[None], model.logits(x[None]))
        if err <= TOLERANCE:
            shape = activation.shape

            def value(points: np.ndarray) -> np.ndarray:
                return tail.probability(points.reshape(len(points), -1), target)

            def gradient(points: np.ndarray) -> np.ndarray:
                return tail.gradient(points.reshape(len(points), -1), target).reshape((len(points), *shape))

            report = {f"from {layer.activation_tensor}": {"path": DENSE_PATH, "max_abs_logit_error": err}}
            return NumpyProbability(value, gradient), report
    return target_probability(model, layer, x, target), {}


def encode_smug(
    model: OnnxModel, x: np.ndarray, config: SmugConfig = SmugConfig(), target: int | None = None,
    layer: FirstLayer | None = None,
) -> SmugEncoding:
    """IG on the first layer's activations, top-k selection, and Eq. 3."""
    x, target = model.checked_input(x, target)
    layer = layer or find_first_layer(model)
    activation = model.tensors(x[None], [layer.activation_tensor])[layer.activation_tensor][0]
    prob, gradients = ig_probability(model, layer, x, activation, target)
    if config.ig_steps is None:
        ig = auto_integrated_gradients(prob, activation, tolerance=config.ig_tolerance)
    else:
        ig = integrated_gradients(prob, activation, steps=config.ig_steps)
    neurons = select_top_k(ig.attribution, config.top_k)
    grid = BlockGrid(model.input_shape, config.window)
    problem, constrained = build_problem(layer, x, neurons, grid, config.gamma, config.form, config.baseline)
    return SmugEncoding(
        problem=problem, grid=grid, layer=layer, target=target, neurons=neurons,
        attribution=ig.attribution.ravel()[neurons], constrained=constrained, ig=ig, gradients=gradients,
    )
