"""Cascade substitution (paper 004 Def. 3, Eq. 19) and the alignment experiment of its
Fig. 2a.

``cascade(model, x, target, method, levels)`` returns Def. 3's ``r_0^N`` (the
input's shape): the backward signal at the input when only the top ``N = levels``
layers (nearest the output) use the method's rule and every layer below passes the
plain gradient (``r_{l-1} = W_l M_l r_l``).  No bottom process (``x * r_0``) is
applied, so ``levels = 0`` is the plain gradient ``dF_c/dx`` for every method:

* ``gbp``: the rule at ReLU-like units, Guided Backprop (RectGrad with ``tau = 0``,
  paper 004 Eq. 6).
* ``rectgrad``: RectGrad with the 90th percentile threshold (paper 004's setting).
* ``zplus``: LRP z+ at Linear/Conv layers (in relevance form, turned into a signal
  at the lowest substituted layer).  z+ starts from the logit; the signal is divided
  by its sign so that a negative logit does not flip the curve between N = 0 and 1.
* ``activation``: activation weighting (Theorem 2): the signal at the ``levels``-th
  ReLU-like unit from the top is *replaced by that unit's activation* ``A_l``, and
  the layers below pass the plain gradient.  This is our reading of "the direct use
  of activation weighting" in Fig. 2a.
"""

from __future__ import annotations

import copy
import threading

import numpy as np

from smug.models.runtime import OnnxModel

METHODS = ("gbp", "rectgrad", "zplus", "activation")


def n_levels(model: OnnxModel, method: str) -> int:
    """How many layers ``method`` can substitute: ReLU-like units, or Linear/Conv layers for z+."""
    from smug.baselines.modified_backprop import lrp_torch, rectgrad_torch

    if method == "zplus":
        return len(lrp_torch(model)[1]["linear_ordinals"])
    if method in METHODS:
        return rectgrad_torch(model)[1]
    raise ValueError(f"unknown cascade method '{method}': choose one of {list(METHODS)}")


def _activation_torch(model: OnnxModel):
    """A deep copy of full_torch whose ReLU-like unit ``state['at']`` replaces the
    backward signal by its own output; ``(module, units, state, lock)``, kept as
    ``model.derived("activation_torch", ...)``."""

    def build():
        from smug.baselines.attribution import full_torch
        from smug.baselines.gradients import relu_like
        from smug.models.torch_backend import torch_module

        torch = torch_module()

        class UseActivation(torch.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                ctx.save_for_backward(a)
                return a.view_as(a)

            @staticmethod
            def backward(ctx, g):
                (a,) = ctx.saved_tensors
                return a.detach().clone()

        net = copy.deepcopy(full_torch(model))
        state: dict = {"at": None}
        units = [m for m in net.modules() if relu_like(m)]

        def hook_for(i):
            def hook(mod, args, out):
                return UseActivation.apply(out) if state["at"] == i else out
            return hook

        for i, m in enumerate(units):
            m.register_forward_hook(hook_for(i))
        return net, len(units), state, threading.Lock()

    return model.derived("activation_torch", build)


def cascade(model: OnnxModel, x: np.ndarray, target: int, method: str, levels: int) -> np.ndarray:
    """``R`` of ``method`` with ``levels``-level cascade substitution (input's shape)."""
    from smug.baselines.modified_backprop import lrp_relevance, rectgrad_signal

    x = np.asarray(x, dtype=np.float32)
    if method == "gbp":
        r0, _ = rectgrad_signal(model, x, target, tau=0.0, levels=levels)
        return r0
    if method == "rectgrad":
        r0, _ = rectgrad_signal(model, x, target, percentile=90.0, levels=levels)
        return r0
    if method == "zplus":
        r0, info = lrp_relevance(model, x, target, input_rule="zplus", levels=levels, signal=True)
        return r0 if levels == 0 or info["relevance_start"] >= 0 else -r0
    if method == "activation":
        from smug.baselines.gradients import model_input
        from smug.models.torch_backend import torch_module

        torch = torch_module()
        net, units, state, lock = _activation_torch(model)
        if int(levels) != levels or not 0 <= levels <= units:
            raise ValueError(f"levels must be an integer in 0..{units}, got {levels}")
        with lock:
            state["at"] = units - int(levels) if levels > 0 else None
            try:
                xt = model_input(net, x)
                (r0,) = torch.autograd.grad(net(xt)[:, target].sum(), xt)
            finally:
                state["at"] = None
        return r0[0].double().cpu().numpy()
    raise ValueError(f"unknown cascade method '{method}': choose one of {list(METHODS)}")


def alignment_curve(model: OnnxModel, x: np.ndarray, target: int, method: str, levels: list[int]) -> dict[int, float]:
    """Input alignment (paper 004 Eq. 1) of ``cascade(..., N)`` for each N in ``levels``."""
    from smug.metrics.alignment import alignment

    return {int(n): alignment(cascade(model, x, target, method, int(n)), x) for n in levels}
