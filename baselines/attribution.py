"""One call shape for every baseline attribution method (captum-like).

``attribute(model, x, target, method, **params)`` checks the input, picks the class
to explain (default: the prediction) and runs a registered method; each method is a
function ``(model, x, target, **params) -> (map, info)`` registered with
``@register(name)``.  Gradient methods run on :func:`full_torch`, a torch copy of
the whole ONNX graph: the user's ``OnnxModel`` and its proto are never modified.

``attribute_batch(model, xs, targets, method, **params)`` is the batched form: ``xs``
is (N, *input_shape), ``targets`` one class per input (default: the predictions), one
:class:`Attribution` per input.  Methods with a batched implementation (registered
with ``@register_batch(name)`` as ``(model, xs, targets, **params) -> (maps, targets,
infos)``) process the whole batch at once; the others run input by input.
"""

from __future__ import annotations

import copy
import importlib
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from smug.deadline import Deadline
from smug.events import Progress
from smug.models.runtime import OnnxModel

# Modules whose import registers built-in methods (imported on first use).
BUILTIN_MODULES: tuple[str, ...] = (
    "smug.baselines.gradients",
    "smug.baselines.perturbation",
    "smug.baselines.extremal",
    "smug.baselines.sis",
    "smug.baselines.modified_backprop",
    "smug.baselines.text",
)

METHODS: dict[str, Callable] = {}
BATCHED: dict[str, Callable] = {}


@dataclass(frozen=True)
class Attribution:
    """A saliency map for one input and one class.

    ``map`` is (H, W) for image inputs (C, H, W) -- channels reduced as the method
    says -- and the input's shape otherwise.  ``params`` holds the parameters used
    (defaults included) and the method's diagnostics; ``seconds`` is the method's
    wall time (the first gradient call on a model includes its one-off torch
    conversion)."""

    method: str
    map: np.ndarray
    target: int
    params: dict
    seconds: float


def register(name: str) -> Callable[[Callable], Callable]:
    """Decorator: make ``fn(model, x, target, **params) -> (map, info)`` available
    to :func:`attribute` as ``method=name``."""

    def deco(fn: Callable) -> Callable:
        if name in METHODS and METHODS[name] is not fn:
            raise ValueError(f"attribution method '{name}' is already registered")
        METHODS[name] = fn
        return fn

    return deco


def register_batch(name: str) -> Callable[[Callable], Callable]:
    """Decorator: a batched implementation ``fn(model, xs, targets, **params) -> (maps,
    targets, infos)`` (one map, class and info dict per input) of the registered method
    ``name``; with ``targets`` None the method explains each input's predicted class
    and returns the classes it used."""

    def deco(fn: Callable) -> Callable:
        if name in BATCHED and BATCHED[name] is not fn:
            raise ValueError(f"batched attribution method '{name}' is already registered")
        BATCHED[name] = fn
        return fn

    return deco


def _load_builtins() -> None:
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)


def methods() -> list[str]:
    """Names of the registered methods."""
    _load_builtins()
    return sorted(METHODS)


def attribute(
    model: OnnxModel, x: np.ndarray, target: int | None = None, method: str = "gradient", *,
    deadline: Deadline | None = None, progress: Progress | None = None, **params
) -> Attribution:
    """Attribution of ``model``'s ``target`` logit (default: the predicted class) at the
    model-space input ``x`` (shape ``model.input_shape``) by ``method``.  ``deadline`` (a
    :class:`~smug.deadline.Deadline`) and ``progress`` form the call's :mod:`~smug.baselines.budget`:
    the long-running methods report progress and stop at the deadline with what they have
    (``params['stopped_at_deadline']`` then says so)."""
    from smug.baselines.budget import budget

    choices = methods()
    if method not in METHODS:
        raise ValueError(f"unknown attribution method '{method}': choose one of {choices}")
    x, target = model.checked_input(x, target)
    t0 = time.perf_counter()
    with budget(deadline, progress):
        saliency, info = METHODS[method](model, x, target, **params)
    seconds = time.perf_counter() - t0
    return Attribution(method=method, map=np.asarray(saliency), target=target, params=dict(info), seconds=seconds)


def attribute_batch(
    model: OnnxModel, xs: np.ndarray, targets=None, method: str = "gradient", **params
) -> list[Attribution]:
    """:func:`attribute` for a batch ``xs`` (N, *input_shape) with one target per input
    (a sequence of N class indices; None: each input's predicted class).  A batched
    implementation sees the whole batch; each :class:`Attribution`'s ``seconds`` is
    then the batch's wall time divided by N.  Other methods run input by input."""
    choices = methods()
    if method not in METHODS:
        raise ValueError(f"unknown attribution method '{method}': choose one of {choices}")
    from smug.models.preprocess import InputError, check_array

    xs = np.asarray(xs)
    shape = tuple(model.input_shape)
    if xs.ndim != len(shape) + 1:
        raise InputError(f"a batch of inputs must have shape (N, *{shape}), got {xs.shape}")
    if len(xs) == 0:
        raise InputError("the batch of inputs is empty")
    xs = np.stack([check_array(x, shape) for x in xs])
    n = len(xs)
    if targets is not None:
        targets = np.asarray(targets).reshape(-1)
        if len(targets) != n or not np.issubdtype(targets.dtype, np.integer):
            raise InputError(f"need {n} integer targets (one per input), got {targets.tolist()}")
        n_classes = model.logits(xs[:1]).shape[1]
        bad = [int(t) for t in targets if not 0 <= int(t) < n_classes]
        if bad:
            raise InputError(f"targets {bad} are not among the model's {n_classes} classes")
        targets = targets.astype(np.int64)
    if method in BATCHED:
        t0 = time.perf_counter()
        maps, used, infos = BATCHED[method](model, xs, targets, **params)
        share = (time.perf_counter() - t0) / n
        return [Attribution(method=method, map=np.asarray(m), target=int(t), params=dict(info), seconds=share)
                for m, t, info in zip(maps, used, infos)]
    if targets is None:
        targets = model.logits(xs).argmax(axis=1)
    out = []
    for x, t in zip(xs, targets):
        t0 = time.perf_counter()
        saliency, info = METHODS[method](model, x, int(t), **params)
        out.append(Attribution(method=method, map=np.asarray(saliency), target=int(t), params=dict(info),
                               seconds=time.perf_counter() - t0))
    return out


def full_torch(model: OnnxModel):
    """The whole ONNX graph as a torch module (eval mode, frozen weights), converted
    from a copy of ``model.proto``; kept as ``model.derived("full_torch", ...)``.  For a graph
    with a fixed batch size it takes that many inputs a call (the methods using it run one input)."""

    def build():
        from smug.models.torch_backend import convert

        return convert(copy.deepcopy(model.proto))

    return model.derived("full_torch", build)
