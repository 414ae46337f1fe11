"""Integrated Gradients (paper 003 Eq. 1) on the first layer's activations.

``F`` is the softmax probability of the target class computed by the rest of the
network from the activations ``a``; the baseline is ``a' = 0``, so
``IG(a) = a * int_0^1 dF(alpha a)/d(alpha a) d alpha``.

The integral is a quadrature rule over ``alpha`` (``schedule``):

* ``"uniform"`` (default): the midpoint rule (Sundararajan et al.'s Riemann sum);
* ``"gauss-legendre"``: Gauss-Legendre nodes, exact for polynomials of degree ``2n - 1``;
* ``"adaptive"``: midpoint steps placed where ``F`` changes along a coarse forward sweep.

Measured on EfficientNet-Lite0 photos against a 512-step midpoint reference
(docs/benchmarks.md, section ``ig_quadrature``): the integrand of each neuron has kinks
wherever a ReLU6 downstream switches, so higher-order nodes do not pay off; at equal
gradient passes the midpoint rule ranks the top-3000 neurons as well as the adaptive
placement (which also spends a forward sweep) and better than Gauss-Legendre.

``F(a)`` and ``F(0)`` come from one extra forward batch; their difference is what the
attributions must sum to (completeness), and the relative error is reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from smug.models.errors import InputError
from smug.models.torch_backend import device, torch_module

SCHEDULES = ("uniform", "gauss-legendre", "adaptive")


class ZeroActivation(InputError):
    """The activations equal IG's zero baseline: every attribution is zero, nothing to rank."""


@dataclass(frozen=True)
class NumpyProbability:
    """``F`` and ``dF/da`` on a batch of points ``(B, *shape)`` in numpy (float64), for networks whose tail
    needs no torch (:class:`~smug.encoders.dense_tail.DenseTail`)."""

    value: Callable[[np.ndarray], np.ndarray]  # (B, *shape) -> (B,)
    gradient: Callable[[np.ndarray], np.ndarray]  # (B, *shape) -> (B, *shape)


@dataclass(frozen=True)
class IGResult:
    attribution: np.ndarray  # same shape as the activations
    steps: int  # gradient evaluations used
    f_input: float  # F(a)
    f_baseline: float  # F(0)
    completeness_error: float  # |sum IG - (F(a) - F(0))| / |F(a) - F(0)|
    seconds: float


def _midpoint(steps: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)


def _nodes(schedule: str, steps: int, f_grid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights on [0, 1] for ``schedule`` (see the module docstring)."""
    if schedule == "gauss-legendre":
        x, w = np.polynomial.legendre.leggauss(steps)  # on [-1, 1]
        return (x + 1.0) / 2.0, w / 2.0
    if schedule == "uniform" or f_grid is None:
        return _midpoint(steps)
    edges = np.linspace(0.0, 1.0, len(f_grid))
    change = np.abs(np.diff(f_grid))
    if not change.sum() > 0:  # F flat on the sweep (or not finite): nothing to concentrate on
        return _midpoint(steps)
    share = 0.2 / len(change) + 0.8 * change / change.sum()
    counts = np.maximum(1, np.round(share * steps)).astype(int)
    alphas, weights = [], []
    for lo, hi, k in zip(edges[:-1], edges[1:], counts):
        h = (hi - lo) / k
        alphas.append(lo + (np.arange(k) + 0.5) * h)
        weights.append(np.full(k, h))
    return np.concatenate(alphas), np.concatenate(weights)


def default_batch(activation_size: int) -> int:
    """Interpolation steps per pass: about 16 MB of float32 activations (10 for EfficientNet-Lite0's
    401,408 stem outputs; 8-16 were the fastest measured on one core), between 1 and 32."""
    return int(min(32, max(1, (4 << 20) // max(1, activation_size))))


def check_activation(activation: np.ndarray) -> None:
    """Refuse activations IG cannot rank: all zero (the baseline itself) or not finite."""
    a = np.asarray(activation)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise InputError("the first layer's activations for this input are empty or not finite")
    if not np.any(a):
        raise ZeroActivation("the first layer's activations are all zero for this input (it equals the zero "
                             "baseline of Integrated Gradients), so no neuron carries evidence to explain")


def integrated_gradients(
    prob: Callable | NumpyProbability,  # torch: activations batch (B, *shape) -> target probability (B,)
    activation: np.ndarray,
    steps: int = 32,
    schedule: str = "uniform",
    batch: int | None = None,
    coarse: int = 16,
) -> IGResult:
    """IG of ``prob`` at ``activation`` against the zero baseline with ``steps`` gradient
    evaluations placed by ``schedule``, ``batch`` at a time (default :func:`default_batch`).
    ``prob`` is a torch function, differentiated by autograd, or a :class:`NumpyProbability`."""
    if steps < 1:
        raise ValueError("IG needs at least one step")
    if schedule not in SCHEDULES:
        raise ValueError(f"IG schedule must be one of {SCHEDULES}, got {schedule!r}")
    check_activation(activation)
    if isinstance(prob, NumpyProbability):
        return _numpy_integrated_gradients(prob, activation, steps, schedule, batch, coarse)
    torch = torch_module()
    dev = device()
    t0 = time.perf_counter()
    a = torch.as_tensor(np.asarray(activation, dtype=np.float32), device=dev)[None]
    batch = batch or default_batch(a.numel())
    view = (-1,) + (1,) * (a.dim() - 1)

    def forward(alphas: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(alphas), batch):
                al = torch.as_tensor(alphas[i : i + batch], dtype=torch.float32, device=dev).view(view)
                out.append(prob(al * a).double().cpu().numpy())
        return np.concatenate(out)

    f_grid = forward(np.linspace(0.0, 1.0, coarse + 1)) if schedule == "adaptive" else forward(np.array([0.0, 1.0]))
    alphas, weights = _nodes(schedule, steps, f_grid)
    total = torch.zeros_like(a, dtype=torch.float64)
    for i in range(0, len(alphas), batch):
        al = torch.as_tensor(alphas[i : i + batch], dtype=torch.float32, device=dev).view(view)
        z = (al * a).requires_grad_(True)
        (grad,) = torch.autograd.grad(prob(z).sum(), z)
        w = torch.as_tensor(weights[i : i + batch], dtype=torch.float64, device=dev).view(view)
        total += (grad.double() * w).sum(0, keepdim=True)
    attribution = (a.double() * total)[0].cpu().numpy()
    return _result(attribution, len(alphas), f_grid, t0)


def _numpy_integrated_gradients(prob: NumpyProbability, activation: np.ndarray, steps: int, schedule: str,
                                batch: int | None, coarse: int) -> IGResult:
    """:func:`integrated_gradients` on a :class:`NumpyProbability` (the same nodes, weights and sums, in float64)."""
    t0 = time.perf_counter()
    a = np.asarray(activation, dtype=np.float32).astype(np.float64)
    batch = batch or default_batch(a.size)
    view = (-1,) + (1,) * a.ndim

    def points(alphas: np.ndarray) -> np.ndarray:
        return alphas.reshape(view) * a[None]

    grid = np.linspace(0.0, 1.0, coarse + 1) if schedule == "adaptive" else np.array([0.0, 1.0])
    f_grid = np.concatenate([prob.value(points(grid[i : i + batch])) for i in range(0, len(grid), batch)])
    alphas, weights = _nodes(schedule, steps, f_grid)
    total = np.zeros_like(a)
    for i in range(0, len(alphas), batch):
        grad = prob.gradient(points(alphas[i : i + batch]))
        total += np.tensordot(weights[i : i + batch], grad, axes=1)
    return _result(a * total, len(alphas), f_grid, t0)


def _result(attribution: np.ndarray, steps: int, f_grid: np.ndarray, t0: float) -> IGResult:
    """The :class:`IGResult` of ``attribution``: completeness against ``F(a) - F(0)`` (the grid's ends)."""
    f1, f0 = float(f_grid[-1]), float(f_grid[0])
    gap = f1 - f0
    err = abs(attribution.sum() - gap) / abs(gap) if gap != 0 else float(abs(attribution.sum()))
    return IGResult(attribution, steps, f1, f0, float(err), time.perf_counter() - t0)


def auto_integrated_gradients(
    prob: Callable, activation: np.ndarray, tolerance: float = 0.05, start: int = 32, max_steps: int = 256,
    schedule: str = "uniform",
) -> IGResult:
    """IG with ``start`` nodes, doubled until the completeness error is within ``tolerance``."""
    steps = start
    spent = 0.0
    while True:
        res = integrated_gradients(prob, activation, steps=steps, schedule=schedule)
        spent += res.seconds
        if res.completeness_error <= tolerance or steps * 2 > max_steps:
            return IGResult(res.attribution, res.steps, res.f_input, res.f_baseline, res.completeness_error, spent)
        steps *= 2
