import numpy as np
import pytest

from smug.encoders.ig import ZeroActivation, auto_integrated_gradients, integrated_gradients
from smug.models.errors import InputError
from smug.encoders.smug import select_top_k
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


@pytest.mark.parametrize("schedule", ["uniform", "adaptive"])
def test_ig_matches_the_closed_form(schedule, rng):
    a = rng.uniform(0, 1, size=(2, 3, 3))
    w = rng.normal(size=(2, 3, 3))
    res = integrated_gradients(sigmoid_model(w), a, steps=128, schedule=schedule)
    np.testing.assert_allclose(res.attribution, closed_form_ig(a, w), atol=2e-5)
    assert res.completeness_error < 1e-3


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
    graph = helper.make_graph(nodes, "bias_free", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
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
