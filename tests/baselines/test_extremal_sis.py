"""Extremal perturbations and SIS (issue 5 baselines) against plain references:
numpy/scipy formulas, hand computations and fresh single-input forward passes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.special import softmax as scipy_softmax

from smug.baselines.attribution import METHODS, attribute, methods
from smug.baselines.extremal import (
    area_regulariser,
    extremal_perturbation,
    extremal_perturbation_input,
    gaussian_blur,
    grid_shape,
    perturb,
    smooth_mask,
)
from smug.baselines.sis import backward_selection, find_sis, sis
from smug.models.torch_backend import torch_module


def softmax(z):
    return scipy_softmax(np.asarray(z, dtype=np.float64))


def prob(model, x, target) -> float:
    """A fresh single-input forward pass: P(target | x)."""
    return float(softmax(model.logits(np.asarray(x, np.float32)[None], batch_size=1)[0])[target])


@pytest.fixture(scope="module")
def digits(mnist_test_split):
    x_test, _ = mnist_test_split
    return x_test[:4]


def flat_model(rng, n=12, classes=3):
    from onnx import TensorProto, helper, numpy_helper

    from smug.models.runtime import OnnxModel

    G = rng.normal(size=(classes, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "G"], ["y"], transB=1)], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], [numpy_helper.from_array(G, "G")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    return OnnxModel.from_proto(proto, "flat")


# ---- SIS ---------------------------------------------------------------------------
def block_mask(shape_hw, window, blocks):
    """(H, W) booleans: the given window x window blocks (index row * cols + col)."""
    h, w = shape_hw
    cols = -(-w // window)
    rows_i, cols_i = np.meshgrid(np.arange(h) // window, np.arange(w) // window, indexing="ij")
    return np.isin(rows_i * cols + cols_i, np.asarray(blocks, dtype=int))


def check_sis(model, x, att, window):
    """Every SIS, checked by fresh single passes: sufficient alone, and removing any one
    of its features drops below the threshold; sets disjoint; map = 1/k."""
    p = att.params
    tau = p["threshold"]
    spatial = x.shape[-2:] if x.ndim > 1 else None
    seen = set()
    for k, (s, mask) in enumerate(zip(p["sets"], p["masks"]), start=1):
        s = [int(i) for i in s]
        assert s and not seen & set(s)
        seen |= set(s)
        if spatial is not None:
            np.testing.assert_array_equal(mask, block_mask(spatial, window, s))
        else:
            np.testing.assert_array_equal(mask, np.isin(np.arange(x.size), s))
        np.testing.assert_array_equal(att.map[mask], 1.0 / k)
        assert prob(model, x * mask, att.target) >= tau
        assert not p["empty_sufficient"]
        for i in s:
            smaller = mask & ~(block_mask(spatial, window, [i]) if spatial is not None else np.arange(x.size) == i)
            assert prob(model, x * smaller, att.target) < tau, (k, i)
    assert np.all(att.map[~np.any(p["masks"], axis=0)] == 0.0) if len(p["sets"]) else np.all(att.map == 0)


def test_sis_on_mnist_is_sufficient_and_backward_minimal(mnist, digits):
    for x in digits:
        att = sis(mnist, x, max_sets=3)
        p = att.params
        assert att.map.shape == (28, 28) and p["window"] == 4 and p["n_features"] == 49
        assert p["threshold"] == pytest.approx(0.9 * prob(mnist, x, att.target), rel=1e-5)
        assert 1 <= len(p["sets"]) <= 3
        check_sis(mnist, x, att, 4)
        # the remaining features after a stop short of max_sets no longer reach the threshold
        if len(p["sets"]) < 3:
            rest = ~np.any(p["masks"], axis=0)
            assert prob(mnist, x * rest, att.target) < p["threshold"]
    default = sis(mnist, digits[0])
    assert len(default.params["sets"]) == 1  # images: one SIS by default


def naive_sis_collection(model, x, target, tau, window, max_sets):
    """Carter et al.'s algorithm with one fresh forward pass per candidate."""
    h, w = x.shape[-2:]
    n = (-(-h // window)) * (-(-w // window))
    remaining = set(range(n))
    sets = []

    def f(units):
        return prob(model, x * block_mask((h, w), window, sorted(units)), target)

    while remaining and len(sets) < max_sets and f(remaining) >= tau:
        s, order = set(remaining), []
        while s:
            vals = [(f(s - {i}), -i) for i in sorted(s)]
            best = -max(vals)[1]
            s.remove(best)
            order.append(best)
        found = next(order[-k:] for k in range(1, len(order) + 1) if f(order[-k:]) >= tau)
        sets.append(sorted(found))
        remaining -= set(found)
    return sets


@pytest.mark.parametrize("window", [4, 2])
def test_sis_on_tiny_conv_equals_a_naive_loop(tiny_conv, rng, window):
    model, _ = tiny_conv
    for _ in range(3):
        x = rng.normal(size=model.input_shape).astype(np.float32)
        att = sis(model, x, max_sets=4, window=window, batch=7)
        p = att.params
        assert att.map.shape == (9, 9)
        check_sis(model, x, att, window)
        expected = naive_sis_collection(model, x, att.target, p["threshold"], window, 4)
        assert [sorted(int(i) for i in s) for s in p["sets"]] == expected


def test_sis_flat_inputs_and_thresholds(rng):
    model = flat_model(rng)
    x = rng.normal(size=12).astype(np.float32)
    att = sis(model, x)  # flat inputs: every disjoint SIS by default
    p = att.params
    assert att.map.shape == (12,) and p["max_sets"] is None and p["n_features"] == 12
    check_sis(model, x, att, 1)
    rest = ~np.any(p["masks"], axis=0) if p["sets"] else np.ones(12, bool)
    assert not rest.any() or prob(model, x * rest, att.target) < p["threshold"]
    # an unreachable threshold: no SIS, an all-zero map
    none = sis(model, x, threshold=1.01 * prob(model, x, att.target))
    assert none.params["sets"] == [] and np.all(none.map == 0)


def test_backward_selection_and_find_sis_on_an_additive_score():
    """f = sum of kept weights: backward selection drops the smallest weights first and the
    SIS is the fewest largest weights whose sum reaches the threshold."""
    wts = np.array([0.3, 5.0, 1.0, 2.0, 0.1, 4.0])

    def f(keep):
        return keep @ wts

    order = backward_selection(f, np.ones(6, bool))
    np.testing.assert_array_equal(order, [4, 0, 2, 3, 5, 1])
    found, score = find_sis(f, order, 6, 8.5, batch=2)
    np.testing.assert_array_equal(found, [1, 5])  # 5 + 4 = 9 >= 8.5; 5 alone is not
    assert score == 9.0
    assert find_sis(f, order, 6, 100.0) == (None, None)


# ---- extremal perturbation: pieces ----------------------------------------------------
@pytest.mark.parametrize("shape,sigma", [((1, 28, 28), 3.0), ((2, 9, 9), 5.5), ((2, 9, 9), 0.7), ((5, 7), 2.0)])
def test_gaussian_blur_equals_scipy(rng, shape, sigma):
    x = rng.normal(size=shape)
    ref = gaussian_filter(x, sigma=(0,) * (len(shape) - 2) + (sigma, sigma), mode="reflect", truncate=4.0)
    np.testing.assert_allclose(gaussian_blur(x, sigma), ref, atol=1e-12)


def test_perturbation_equals_a_numpy_reference(rng):
    torch = torch_module()
    for shape in [(1, 28, 28), (2, 9, 9), (9, 9)]:
        x = rng.normal(size=shape).astype(np.float32)
        m = rng.random(shape[-2:])
        blur = gaussian_filter(x.astype(np.float64), sigma=(0,) * (len(shape) - 2) + (2.0, 2.0), mode="reflect")
        expected = x * m + blur * (1 - m)  # the mask broadcasts over channels
        np.testing.assert_allclose(extremal_perturbation_input(x, m, blur_sigma=2.0), expected, rtol=1e-5, atol=1e-6)
        deleted = x * (1 - m) + blur * m
        np.testing.assert_allclose(extremal_perturbation_input(x, m, 2.0, variant="delete"), deleted, atol=1e-5)
        # a batch of masks; the torch path used during optimisation gives the same
        ms = rng.random((3, *shape[-2:]))
        got = perturb(torch.as_tensor(x), torch.as_tensor(ms, dtype=torch.float32),
                      torch.as_tensor(blur, dtype=torch.float32)).numpy()
        for b in range(3):
            np.testing.assert_allclose(got[b], x * ms[b] + blur * (1 - ms[b]), rtol=1e-5, atol=1e-6)


def test_area_regulariser_by_hand():
    torch = torch_module()
    m = np.array([[0.2, 0.9], [0.6, 0.1]])
    # sorted (0.1, 0.2, 0.6, 0.9); a = 0.5: r_a = (0, 0, 1, 1) -> (.01 + .04 + .16 + .01) / 4
    assert area_regulariser(m, 0.5) == pytest.approx(0.055)
    # a = 0.25: r_a = (0, 0, 0, 1) -> (.01 + .04 + .36 + .01) / 4
    assert area_regulariser(m, 0.25) == pytest.approx(0.105)
    assert area_regulariser(np.array([[0.0, 1.0], [0.0, 0.0]]), 0.25) == 0.0  # a binary mask of the right area
    both = area_regulariser(torch.as_tensor(np.stack([m, m])), [0.5, 0.25])
    np.testing.assert_allclose(both.numpy(), [0.055, 0.105])


def test_smooth_max_convolution_equals_a_brute_force_max(rng):
    torch = torch_module()
    h, w, step, sigma = 9, 11, 3, 2.0
    gh, gw = grid_shape((h, w), step)
    assert (gh, gw) == (4, 5)  # points at 0, 3, 6, 9 (rows) and 0, ..., 12 (cols)
    mbar = rng.random((2, gh, gw))
    expected = np.zeros((2, h, w))
    for y in range(h):
        for x in range(w):
            for i in range(gh):
                for j in range(gw):
                    g = np.exp(-((y - i * step) ** 2 + (x - j * step) ** 2) / (2 * sigma**2))
                    expected[:, y, x] = np.maximum(expected[:, y, x], g * mbar[:, i, j])
    np.testing.assert_allclose(smooth_mask(mbar, (h, w), step, sigma), expected, rtol=1e-12)
    got = smooth_mask(torch.as_tensor(mbar), (h, w), step, sigma).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_smooth_mask_gradient_goes_to_the_maximising_grid_point(rng):
    """Autograd through :func:`smooth_mask` (a max found without autograd, re-read by a
    gather) equals the gradient of the dense max over every grid point, where the
    maximiser is unique (random grids: ties have probability 0)."""
    torch = torch_module()
    h, w, step, sigma = 10, 13, 3, 2.5
    gh, gw = grid_shape((h, w), step)
    mbar = torch.as_tensor(rng.random((2, gh, gw)), dtype=torch.float64).requires_grad_(True)
    weights = torch.as_tensor(rng.normal(size=(2, h, w)))
    (g,) = torch.autograd.grad((smooth_mask(mbar, (h, w), step, sigma) * weights).sum(), mbar)
    ref = mbar.detach().clone().requires_grad_(True)
    ys, xs = np.arange(h)[:, None, None, None], np.arange(w)[None, :, None, None]
    ii, jj = np.arange(gh)[None, None, :, None], np.arange(gw)[None, None, None, :]
    kernel = torch.as_tensor(np.exp(-((ys - ii * step) ** 2 + (xs - jj * step) ** 2) / (2 * sigma**2)))  # (h, w, gh, gw)
    dense = (kernel[None] * ref[:, None, None]).flatten(3).amax(dim=3)  # (2, h, w)
    (g_ref,) = torch.autograd.grad((dense * weights).sum(), ref)
    np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=1e-12, atol=1e-12)
    assert (g_ref != 0).sum() >= 4


def test_area_regulariser_gradient_equals_the_sorted_form(rng):
    """The torch regulariser (sum of squares minus a top-K sum, no full sort) has the value
    and the gradient of ``||sort(m) - r_a||^2 / |Omega|`` computed with a full sort."""
    torch = torch_module()
    areas = [0.0, 0.1, 0.5, 1.0]
    m = torch.as_tensor(rng.random((4, 7, 9))).requires_grad_(True)
    (g,) = torch.autograd.grad(area_regulariser(m, areas).sum(), m)
    ref = m.detach().clone().requires_grad_(True)
    r_a = torch.as_tensor(np.stack([np.r_[np.zeros(63 - round(a * 63)), np.ones(round(a * 63))] for a in areas]))
    sorted_form = ((torch.sort(ref.flatten(1), dim=1).values - r_a) ** 2).mean(dim=1)
    (g_ref,) = torch.autograd.grad(sorted_form.sum(), ref)
    np.testing.assert_allclose(area_regulariser(m, areas).detach().numpy(), sorted_form.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(area_regulariser(m.detach().numpy(), areas), sorted_form.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=1e-12, atol=1e-15)


# ---- extremal perturbation: the optimisation ----------------------------------------
def test_extremal_perturbation_on_mnist(mnist, digits):
    """A blur strong enough to remove the digit (3 px); the optimised 10% mask keeps the
    class better than the uniform starting mask of the same mean area."""
    before = mnist.proto.SerializeToString()
    for x in digits[:3]:
        att = extremal_perturbation(mnist, x, iterations=100, blur_sigma=3.0)
        p = att.params
        m = att.map
        assert m.shape == (28, 28) and m.min() >= 0.0 and m.max() <= 1.0
        assert abs(m.mean() - 0.1) < 0.1
        start = smooth_mask(np.full((1, *p["grid_shape"]), 0.1), (28, 28), p["step"], p["sigma"])[0]
        p0 = prob(mnist, extremal_perturbation_input(x, start, 3.0), att.target)
        p1 = prob(mnist, extremal_perturbation_input(x, m, 3.0), att.target)
        assert p1 > p0
        assert p["p_initial"][0] == pytest.approx(p0, rel=1e-4) and p["p_final"][0] == pytest.approx(p1, rel=1e-4)
        # the delete game removes 10% and lowers the class probability
        d = extremal_perturbation(mnist, x, iterations=60, blur_sigma=3.0, variant="delete").params
        assert d["p_final"][0] < d["p_initial"][0]
    assert mnist.proto.SerializeToString() == before  # the user's model is untouched


def test_extremal_areas_are_optimised_as_one_batch(tiny_conv, rng):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    both = extremal_perturbation(model, x, 1, area=(0.2, 0.5), iterations=30, step=2, sigma=1.5)
    assert both.params["masks"].shape == (2, 9, 9)
    for k, a in enumerate((0.2, 0.5)):
        one = extremal_perturbation(model, x, 1, area=a, iterations=30, step=2, sigma=1.5)
        np.testing.assert_allclose(both.params["masks"][k], one.map, atol=1e-4)
    np.testing.assert_allclose(both.map, both.params["masks"].mean(axis=0))
    with pytest.raises(ValueError, match="image input"):
        extremal_perturbation(flat_model(rng), rng.normal(size=12).astype(np.float32), iterations=1)


def test_registered_in_the_one_call_shape(tiny_conv, rng):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    assert {"extremal_perturbation", "sis"} <= set(methods())
    for name, params in [("extremal_perturbation", dict(iterations=5)), ("sis", {})]:
        att = attribute(model, x, method=name, **params)
        assert att.method == name and att.map.shape == (9, 9) and np.all(np.isfinite(att.map))
        saliency, info = METHODS[name](model, x, 2, **params)
        assert saliency.shape == (9, 9) and isinstance(info, dict)


# ---- one smoke test on EfficientNet-Lite0 ----------------------------------------------
@pytest.mark.slow
def test_extremal_and_sis_smoke_on_lite0(lite0, cat):
    model, _ = lite0
    att = extremal_perturbation(model, cat, iterations=8, area=0.2)
    assert att.map.shape == (224, 224) and np.all(np.isfinite(att.map))
    assert att.params["grid_shape"] == (33, 33)
    s = sis(model, cat, window=56)  # 4 x 4 blocks: SIS does not scale to fine blocks on ImageNet
    assert s.map.shape == (224, 224) and len(s.params["sets"]) == 1
    mask = s.params["masks"][0]
    assert prob(model, cat * mask, s.target) >= s.params["threshold"]
