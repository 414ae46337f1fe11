"""Cascade substitution (paper 004 Def. 3): 0 levels is the plain gradient, all levels
the method itself; checked against plain torch gradients and the baselines."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from smug.baselines.attribution import full_torch  # noqa: E402
from smug.baselines.gradients import input_gradient, guided_torch  # noqa: E402
from smug.baselines.modified_backprop import lrp_relevance, rectgrad_signal  # noqa: E402
from smug.metrics.cascade import alignment_curve, cascade, n_levels  # noqa: E402


def _case(tiny_conv, rng):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    return model, x, int(model.logits(x[None])[0].argmax())


def test_zero_levels_is_the_plain_gradient(tiny_conv, rng):
    model, x, t = _case(tiny_conv, rng)
    g = input_gradient(full_torch(model), x, t)
    np.testing.assert_allclose(cascade(model, x, t, "gbp", 0), g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cascade(model, x, t, "activation", 0), g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cascade(model, x, t, "rectgrad", 0), g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cascade(model, x, t, "zplus", 0), g, rtol=1e-4, atol=1e-5)


def test_all_levels_is_the_method(tiny_conv, rng):
    model, x, t = _case(tiny_conv, rng)
    gbp = input_gradient(guided_torch(model)[0], x, t)
    np.testing.assert_allclose(cascade(model, x, t, "gbp", n_levels(model, "gbp")), gbp, rtol=1e-5, atol=1e-6)
    r_all, _ = rectgrad_signal(model, x, t, percentile=90.0)
    np.testing.assert_allclose(cascade(model, x, t, "rectgrad", n_levels(model, "rectgrad")),
                               r_all, rtol=1e-5, atol=1e-6)
    zp, _ = lrp_relevance(model, x, t, input_rule="zplus")  # relevance x * r_0, started from the logit
    assert n_levels(model, "zplus") == 2  # tiny_conv: Conv and Gemm
    sign = np.sign(model.logits(x[None])[0, t])
    np.testing.assert_allclose(x * cascade(model, x, t, "zplus", 2), sign * zp, rtol=1e-4, atol=1e-6)


def test_activation_weighting_uses_the_activation(tiny_conv, rng):
    """tiny_conv: x -> Pad -> Conv -> BN -> ReLU (A) -> Flatten -> Gemm.  With the signal at
    the ReLU replaced by A, r_0 is the vector-Jacobian product of A through the ReLU and
    the layers below: d<A_detached, A(x)>/dx."""
    torch = pytest.importorskip("torch")
    model, x, t = _case(tiny_conv, rng)
    net = full_torch(model)
    acts = []
    relu = [m for m in net.modules() if type(m).__name__ in ("ReLU",)][0]
    h = relu.register_forward_hook(lambda m, a, o: acts.append(o))
    xt = torch.as_tensor(x[None]).requires_grad_(True)
    net(xt)
    h.remove()
    (ref,) = torch.autograd.grad(acts[0], xt, grad_outputs=acts[0].detach())
    np.testing.assert_allclose(cascade(model, x, t, "activation", 1), ref[0].double().numpy(), rtol=1e-5, atol=1e-6)


def test_levels_are_checked_and_curve(tiny_conv, rng):
    model, x, t = _case(tiny_conv, rng)
    with pytest.raises(ValueError, match="levels"):
        cascade(model, x, t, "gbp", 5)
    with pytest.raises(ValueError, match="levels"):
        cascade(model, x, t, "zplus", -1)
    with pytest.raises(ValueError, match="unknown cascade"):
        cascade(model, x, t, "saliency", 0)
    with pytest.raises(ValueError, match="zplus"):
        lrp_relevance(model, x, t, input_rule="zb", levels=1)
    curve = alignment_curve(model, x, t, "gbp", [0, 1])
    assert set(curve) == {0, 1} and all(-1 <= v <= 1 for v in curve.values())
