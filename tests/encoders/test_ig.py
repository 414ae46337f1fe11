import numpy as np
import pytest

from smug.encoders.ig import NumpyProbability, ZeroActivation, auto_integrated_gradients, integrated_gradients
from smug.encoders.smug import select_top_k
from smug.models.errors import InputError
from smug.models.torch_backend import device, torch_module


def sigmoid_model(w):
    torch = torch_module()
    wt = torch.as_tensor(w, dtype=torch.float32, device=device())

    def prob(a):
        return torch.sigmoid((a * wt).flatten(1).sum(1))

    return prob


def closed_form_ig(a, w):
    """IG of sigmoid(w.a) with zero baseline: a_i w_i (s(w.a) - s(0)) / (w.a)."""
    t = float((a * w).sum())
    s = lambda v: 1 / (1 + np.exp(-v))
    return a * w * (s(t) - 0.5) / t


@pytest.mark.parametrize("schedule", ["uniform", "adaptive", "gauss-legendre"])
def test_ig_matches_the_closed_form(schedule, rng):
    a = rng.uniform(0, 1, size=(2, 3, 3))
    w = rng.normal(size=(2, 3, 3))
    res = integrated_gradients(sigmoid_model(w), a, steps=128, schedule=schedule)
    np.testing.assert_allclose(res.attribution, closed_form_ig(a, w), atol=2e-5)
    assert res.completeness_error < 1e-3


def numpy_sigmoid_model(w) -> NumpyProbability:
    """sigmoid(w.a) and its gradient s(1 - s) w, in numpy."""

    def value(points):
        return 1 / (1 + np.exp(-(points * w).reshape(len(points), -1).sum(1)))

    def gradient(points):
        s = value(points)
        return (s * (1 - s)).reshape((-1,) + (1,) * w.ndim) * w[None]

    return NumpyProbability(value, gradient)


@pytest.mark.parametrize("schedule", ["uniform", "adaptive", "gauss-legendre"])
def test_numpy_ig_matches_the_closed_form_and_the_torch_ig(schedule, rng):
    a = rng.uniform(0, 1, size=(2, 3, 3))
    w = rng.normal(size=(2, 3, 3))
    res = integrated_gradients(numpy_sigmoid_model(w), a, steps=128, schedule=schedule, batch=7)
    np.testing.assert_allclose(res.attribution, closed_form_ig(a, w), atol=2e-5)
    assert res.completeness_error < 1e-3 and res.steps == integrated_gradients(sigmoid_model(w), a, 128, schedule).steps
    torch_res = integrated_gradients(sigmoid_model(w), a, steps=32, schedule=schedule)
    np.testing.assert_allclose(integrated_gradients(numpy_sigmoid_model(w), a, steps=32, schedule=schedule).attribution,
                               torch_res.attribution, atol=1e-6)


def test_auto_ig_meets_its_completeness_tolerance(rng):
    a = rng.uniform(0, 3, size=(4, 4))
    w = rng.normal(size=(4, 4))
    res = auto_integrated_gradients(sigmoid_model(w), a, tolerance=0.01)
    assert res.completeness_error <= 0.01
    gap = res.f_input - res.f_baseline
    assert abs(res.attribution.sum() - gap) <= 0.01 * abs(gap)


def test_top_k_keeps_only_positive_attributions_in_order():
    attr = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, 0.1]])
    assert select_top_k(attr, 10).tolist() == [4, 2, 0, 5]
    assert select_top_k(attr, 2).tolist() == [4, 2]


def bias_free_conv_net():
    """Conv (no bias) -> Relu -> Flatten -> Gemm: a zero input gives all-zero activations."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(1)
    inits = [numpy_helper.from_array(r.normal(size=(3, 1, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(r.normal(size=(4, 3 * 4 * 4)).astype(np.float32), "G")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["z"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["z"], ["a"]),
             helper.make_node("Flatten", ["a"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "G"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "bias_free",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("schedule", ["uniform", "adaptive"])
def test_all_zero_activation_is_a_typed_input_error(schedule):
    w = np.ones((2, 3))
    with pytest.raises(ZeroActivation, match="all zero"):
        integrated_gradients(sigmoid_model(w), np.zeros((2, 3)), steps=8, schedule=schedule)
    assert issubclass(ZeroActivation, InputError)
    with pytest.raises(InputError, match="not finite"):
        integrated_gradients(sigmoid_model(w), np.full((2, 3), np.nan), steps=8)


def test_flat_target_probability_gives_zero_attribution_not_a_crash():
    """F constant along the path (the adaptive sweep sees no change): uniform nodes, IG = 0 exactly."""
    torch = torch_module()
    a = np.arange(1.0, 7.0).reshape(2, 3)

    def flat(z):
        return torch.full((z.shape[0],), 0.25, device=z.device) + 0 * z.flatten(1).sum(1)

    res = integrated_gradients(flat, a, steps=8, schedule="adaptive")
    assert res.steps == 8 and not res.attribution.any() and res.f_input == res.f_baseline == 0.25


def test_zero_input_to_a_bias_free_conv_is_a_clear_pipeline_error(tmp_path):
    """Issue 18 item 7: the request fails as an InputError naming the cause, not a TypeError."""
    import onnx

    from smug.pipeline import run
    from smug.pipeline.request import ExplainRequest

    path = tmp_path / "bias_free.onnx"
    onnx.save(bias_free_conv_net(), str(path))
    request = ExplainRequest.build(np.zeros((1, 6, 6), np.float32), str(path), top_k=5, window=2, ig_steps=8)
    with pytest.raises(InputError, match="activations are all zero") as info:
        run(request)
    assert str(tmp_path) not in str(info.value)


def relu_net(seed=0):
    """sigmoid(v . relu(W a + c)): an integrand with kinks, like a real network's."""
    torch = torch_module()
    r = np.random.default_rng(seed)
    W, c, v = r.normal(size=(20, 12)), r.normal(size=20) * 0.5, r.normal(size=20)
    Wt, ct, vt = (torch.as_tensor(t, dtype=torch.float32, device=device()) for t in (W, c, v))

    def prob(a):
        return torch.sigmoid(torch.relu(a.flatten(1) @ Wt.T + ct) @ vt)

    def grad_np(a):  # the exact gradient of the same function in float64, by hand
        h = W @ a + c
        s = 1 / (1 + np.exp(-(v @ np.maximum(h, 0))))
        return s * (1 - s) * (W.T @ (v * (h > 0)))

    return prob, grad_np


@pytest.mark.parametrize("schedule,steps,tol", [("uniform", 64, 0.02), ("gauss-legendre", 64, 0.05)])
def test_ig_agrees_with_a_fine_riemann_sum_on_a_kinked_network(schedule, steps, tol, rng):
    """Against a plain 20,000-step midpoint sum of the float64 gradient, and complete."""
    prob, grad_np = relu_net()
    a = rng.uniform(0, 2, size=12)
    n = 20000
    ref = a * np.mean([grad_np(((k + 0.5) / n) * a) for k in range(n)], axis=0)
    res = integrated_gradients(prob, a, steps=steps, schedule=schedule)
    assert np.abs(res.attribution - ref).sum() <= tol * np.abs(ref).sum()
    gap = res.f_input - res.f_baseline
    assert res.completeness_error == pytest.approx(abs(res.attribution.sum() - gap) / abs(gap))
    assert abs(ref.sum() - gap) <= 1e-3 * abs(gap)  # the reference itself is complete


def test_batching_does_not_change_the_answer(rng):
    prob, _ = relu_net(1)
    a = rng.uniform(0, 2, size=12)
    one = integrated_gradients(prob, a, steps=24, batch=1).attribution
    for b in (5, 24, 100):
        np.testing.assert_allclose(integrated_gradients(prob, a, steps=24, batch=b).attribution, one,
                                   rtol=1e-5, atol=1e-8)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        integrated_gradients(sigmoid_model(np.ones(3)), np.ones(3), schedule="simpson")
