"""Gradient baselines, each against a plain reference: central finite differences
through onnxruntime, IG completeness, captum on a separately converted module, and a
numpy Guided Backprop for ReLU6 / Clip units."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from smug.baselines.attribution import BATCHED, Attribution, attribute, attribute_batch, full_torch, methods
from smug.baselines.gradients import fast_torch
from smug.models.runtime import OnnxModel
from smug.models.torch_backend import convert, torch_module

GRADIENT_METHODS = ["gradient", "integrated_gradients", "gradcam", "guided_backprop"]


# ---- references --------------------------------------------------------------
def reference_net(model: OnnxModel):
    """An independent torch conversion for captum (captum hooks it, not ours)."""
    return convert(copy.deepcopy(model.proto))


def as_batch(net, x: np.ndarray):
    torch = torch_module()
    dev = next(net.parameters()).device
    return torch.as_tensor(x[None], dtype=torch.float32, device=dev)


def central_differences(model: OnnxModel, x: np.ndarray, target: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(central difference of the target logit per input element, True where the two
    one-sided differences agree, i.e. no ReLU kink was crossed), via onnxruntime."""
    n = x.size
    steps = np.eye(n, dtype=np.float32).reshape((n,) + x.shape) * eps
    f0 = model.logits(x[None])[0, target]
    up = model.logits(x[None] + steps)[:, target]
    down = model.logits(x[None] - steps)[:, target]
    fwd, bwd = (up - f0) / eps, (f0 - down) / eps
    smooth = np.abs(fwd - bwd) <= 1e-3 + 1e-3 * np.abs(fwd)
    return ((up - down) / (2 * eps)).reshape(x.shape), smooth.reshape(x.shape)


def image_absmax(a: np.ndarray) -> np.ndarray:
    return np.abs(a).max(axis=0)


# ---- call shape --------------------------------------------------------------
def test_call_shape_and_errors(tiny_conv, conv_input):
    model, _ = tiny_conv
    assert set(GRADIENT_METHODS) <= set(methods())
    a = attribute(model, conv_input)
    assert isinstance(a, Attribution) and a.method == "gradient"
    assert a.target == int(model.logits(conv_input[None])[0].argmax())
    assert a.map.shape == (9, 9) and a.seconds > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.target = 0  # type: ignore[misc]
    assert attribute(model, conv_input, target=1).target == 1
    with pytest.raises(ValueError, match="choose one of .*gradcam.*gradient.*guided_backprop.*integrated_gradients"):
        attribute(model, conv_input, method="nope")
    with pytest.raises(ValueError, match="target"):
        attribute(model, conv_input, target=4)
    with pytest.raises(ValueError, match="shape"):
        attribute(model, conv_input[:1])
    with pytest.raises(ValueError, match="unknown layer"):
        attribute(model, conv_input, method="gradcam", layer="nope")


def test_gradcam_needs_a_convolution(mnist, digit):
    with pytest.raises(ValueError, match="convolution"):
        attribute(mnist, digit, method="gradcam")


# ---- gradient vs finite differences and captum Saliency ----------------------
def test_gradient_matches_central_differences_on_the_mnist_mlp(mnist, digit):
    a = attribute(mnist, digit, method="gradient")
    fd, smooth = central_differences(mnist, digit, a.target, eps=1e-2)
    assert smooth.mean() > 0.95  # a few pixels may cross a ReLU kink within +-eps
    np.testing.assert_allclose(a.map[smooth[0]], np.abs(fd[0])[smooth[0]], rtol=1e-3, atol=2e-4)


def test_gradient_matches_central_differences_on_tiny_conv(tiny_conv, conv_input):
    model, _ = tiny_conv
    for target in range(4):
        a = attribute(model, conv_input, target=target, method="gradient")
        fd, smooth = central_differences(model, conv_input, target, eps=1e-2)
        assert smooth.all()
        np.testing.assert_allclose(a.map, image_absmax(fd), rtol=1e-3, atol=2e-4)


@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_gradient_equals_captum_saliency(which, request, digit, conv_input):
    from captum.attr import Saliency

    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    net = reference_net(model)
    for target in range(3):
        ref = Saliency(net).attribute(as_batch(net, x), target=target, abs=True)
        ref = ref.max(dim=1).values[0].cpu().numpy()
        np.testing.assert_allclose(attribute(model, x, target, "gradient").map, ref, rtol=1e-6, atol=1e-7)


# ---- Integrated Gradients -----------------------------------------------------
@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_ig_completeness_with_256_steps(which, request, digit, conv_input):
    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    a = attribute(model, x, method="integrated_gradients", steps=256)
    f = model.logits(np.stack([x, np.zeros_like(x)]))[:, a.target].astype(np.float64)  # onnxruntime
    gap = f[0] - f[1]
    assert abs(gap) > 1.0
    assert abs(float(a.map.sum()) - gap) <= 0.01 * abs(gap)
    assert a.params["steps"] == 256 and a.params["completeness_error"] <= 0.01
    assert a.params["f_input"] == pytest.approx(f[0], abs=1e-4)
    assert a.params["f_baseline"] == pytest.approx(f[1], abs=1e-4)


@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_ig_equals_captum_riemann_middle(which, request, digit, conv_input):
    from captum.attr import IntegratedGradients

    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    net = full_torch(model)  # the same converted module
    xt = as_batch(net, x)
    for target in range(3):
        ref = IntegratedGradients(net).attribute(
            xt, baselines=xt * 0, target=target, n_steps=64, method="riemann_middle", internal_batch_size=16)
        ref = ref.sum(dim=1)[0].detach().cpu().numpy()
        ours = attribute(model, x, target, "integrated_gradients")
        assert ours.params["steps"] == 64 and ours.params["batch"] == 16
        np.testing.assert_allclose(ours.map, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


# ---- Grad-CAM ---------------------------------------------------------------
@pytest.mark.parametrize("layer", [None, "BatchNormalization", "Relu"])
def test_gradcam_equals_captum_layer_gradcam(layer, tiny_conv, conv_input):
    from captum.attr import LayerAttribution, LayerGradCam

    model, _ = tiny_conv
    net = reference_net(model)
    xt = as_batch(net, conv_input)
    for target in range(4):
        ours = attribute(model, conv_input, target, "gradcam", **({} if layer is None else {"layer": layer}))
        assert ours.params["layer"] == (layer or "Conv.1")  # default: the last (only) Conv
        assert ours.params["layer_shape"] == [3, 5, 5]
        cam = LayerGradCam(net, net.get_submodule(ours.params["layer"])).attribute(
            xt, target=target, relu_attributions=True)
        ref = LayerAttribution.interpolate(cam, (9, 9), "bilinear")[0, 0].detach().cpu().numpy()
        np.testing.assert_allclose(ours.map, ref, rtol=1e-5, atol=1e-6 * max(np.abs(ref).max(), 1.0))
        assert ours.map.min() >= 0


# ---- Guided Backprop ----------------------------------------------------------
@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_guided_backprop_equals_captum(which, request, digit, conv_input):
    from captum.attr import GuidedBackprop

    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    net = reference_net(model)
    differs = False
    for target in range(3):
        ref = GuidedBackprop(net).attribute(as_batch(net, x), target=target)
        ref = image_absmax(ref[0].detach().cpu().numpy())
        ours = attribute(model, x, target, "guided_backprop")
        assert ours.params["guided_units"] == 1
        np.testing.assert_allclose(ours.map, ref, rtol=1e-6, atol=1e-7)
        differs |= not np.allclose(ours.map, attribute(model, x, target, "gradient").map)
    assert differs  # the guided rule did change something


def clip_mlp(max_val: float, seed: int = 1):
    """Flatten -> Gemm -> Clip(0, max_val) -> Gemm on (2, 3, 3) inputs, random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(seed)
    W1 = (3 * r.normal(size=(12, 18))).astype(np.float32)  # large: some units saturate at max_val
    b1 = r.normal(size=12).astype(np.float32)
    W2 = r.normal(size=(4, 12)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (W1, "W1"), (b1, "b1"), (W2, "W2"), (np.zeros(4, np.float32), "b2"),
        (np.array(0, np.float32), "lo"), (np.array(max_val, np.float32), "hi")]]
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W1", "b1"], ["z"], transB=1),
        helper.make_node("Clip", ["z", "lo", "hi"], ["a"]),
        helper.make_node("Gemm", ["a", "W2", "b2"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "clip_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return OnnxModel.from_proto(proto, "clip_mlp"), (W1, b1, W2)


@pytest.mark.parametrize("max_val", [6.0, 4.0])  # onnx2torch: nn.ReLU6, OnnxClip(0, 4)
def test_guided_backprop_on_clip_units_matches_numpy(max_val, rng):
    model, (W1, b1, W2) = clip_mlp(max_val)
    x = rng.normal(size=(2, 3, 3)).astype(np.float32)
    z = W1.astype(np.float64) @ x.ravel() + b1
    active = (z > 0) & (z < max_val)
    assert active.any() and (z >= max_val).any() and (z <= 0).any()
    for target in range(4):
        r0 = W1.T.astype(np.float64) @ (active * np.maximum(W2[target], 0))  # paper 004 Eq. 6
        ours = attribute(model, x, target, "guided_backprop")
        assert ours.params["guided_units"] == 1
        np.testing.assert_allclose(ours.map, image_absmax(r0.reshape(x.shape)), rtol=1e-5, atol=1e-5)


# ---- the user's model is never modified ---------------------------------------
@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_models_are_unchanged_by_every_method(which, request, digit, conv_input):
    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    before = model.proto.SerializeToString()
    logits = model.logits(x[None])
    plain = attribute(model, x, 0, "gradient").map
    for method in GRADIENT_METHODS:
        if method == "gradcam" and which == "mnist":
            continue
        attribute(model, x, 0, method, **({"steps": 32} if method == "integrated_gradients" else {}))
        assert model.proto.SerializeToString() == before, method
    np.testing.assert_array_equal(model.logits(x[None]), logits)
    np.testing.assert_array_equal(attribute(model, x, 0, "gradient").map, plain)  # no hooks left on full_torch
    torch = torch_module()
    with torch.no_grad():
        out = full_torch(model)(as_batch(full_torch(model), x)).cpu().numpy()
    np.testing.assert_allclose(out, logits, rtol=1e-5, atol=1e-5)


# ---- the simplified torch copy and the batched call shape --------------------
def _grad(net, x: np.ndarray, target: int) -> np.ndarray:
    torch = torch_module()
    xt = as_batch(net, x).requires_grad_(True)
    (g,) = torch.autograd.grad(net(xt)[0, target], xt)
    return g[0].cpu().numpy()


@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_fast_torch_is_the_same_function(which, request, digit, conv_input):
    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    before = model.proto.SerializeToString()
    fast, net = fast_torch(model), reference_net(model)
    torch = torch_module()
    with torch.no_grad():
        np.testing.assert_allclose(fast(as_batch(fast, x)).cpu().numpy(), model.logits(x[None]), rtol=1e-5, atol=1e-5)
    for target in range(3):
        np.testing.assert_allclose(_grad(fast, x, target), _grad(net, x, target), rtol=1e-5, atol=1e-6)
    assert model.proto.SerializeToString() == before


def test_onednn_convolutions_keep_the_function_and_its_input_gradient(rng):
    """1x1, depthwise, grouped, padded and strided convolutions: outputs and input
    gradients of the switched copy equal those of the plain torch module."""
    from smug.baselines.gradients import onednn_convs

    torch = torch_module()
    nn = torch.nn
    torch.manual_seed(0)
    plain = nn.Sequential(
        nn.Conv2d(4, 6, 1), nn.ReLU6(), nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.Conv2d(6, 8, 5, padding=2, groups=2),
        nn.Conv2d(8, 8, 3, stride=2), nn.Conv2d(8, 4, 3, padding=0, bias=False), nn.Conv2d(4, 4, 1, padding=1),
    ).eval()
    for p in plain.parameters():
        p.requires_grad_(False)
    switched = copy.deepcopy(plain)
    assert onednn_convs(switched) == 6
    x = torch.as_tensor(rng.normal(size=(3, 4, 15, 13)), dtype=torch.float32)
    w = torch.as_tensor(rng.normal(size=plain(x).shape), dtype=torch.float32)
    grads = []
    for net in (plain, switched):
        xt = x.clone().requires_grad_(True)
        out = net(xt)
        (g,) = torch.autograd.grad((out * w).sum(), xt)
        grads.append((out.detach().numpy(), g.numpy()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())


@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_batched_gradient_equals_single_calls(which, request, rng, mnist_test_split):
    model = request.getfixturevalue(which) if which == "mnist" else request.getfixturevalue("tiny_conv")[0]
    xs = mnist_test_split[0][:5] if which == "mnist" else rng.normal(size=(5, 2, 9, 9)).astype(np.float32)
    assert "gradient" in BATCHED and "gradcam" in BATCHED
    predicted = model.logits(xs).argmax(axis=1)
    for targets in (None, [3, 0, 1, 2, 1]):
        got = attribute_batch(model, xs, targets, "gradient", batch=2)  # 3 passes: 2 + 2 + 1
        want = predicted if targets is None else targets
        assert [a.target for a in got] == list(want)
        for x, a in zip(xs, got):
            ref = Saliency_map(model, x, a.target)
            assert isinstance(a, Attribution) and a.method == "gradient" and a.seconds > 0
            np.testing.assert_allclose(a.map, ref, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(a.map, attribute(model, x, a.target, "gradient").map, rtol=1e-6, atol=1e-7)


def Saliency_map(model: OnnxModel, x: np.ndarray, target: int) -> np.ndarray:
    """captum's Saliency on an independent conversion, channels reduced by max |.|."""
    from captum.attr import Saliency

    net = reference_net(model)
    ref = Saliency(net).attribute(as_batch(net, x), target=target, abs=True)[0].detach().cpu().numpy()
    return ref.max(axis=0) if ref.ndim == 3 else ref


@pytest.mark.parametrize("layer", [None, "Relu", "Conv.0"])
def test_batched_gradcam_equals_captum(layer, tiny_conv, rng):
    """Per-input targets, batches of 2; "Conv.0" (the pad inside the converted Conv node)
    has no ONNX tensor and is read by a hook on the torch copy instead of onnxruntime."""
    from captum.attr import LayerAttribution, LayerGradCam

    model, _ = tiny_conv
    xs = rng.normal(size=(3, 2, 9, 9)).astype(np.float32)
    params = {} if layer is None else {"layer": layer}
    got = attribute_batch(model, xs, [0, 3, 1], "gradcam", batch=2, **params)
    net = reference_net(model)
    for x, a in zip(xs, got):
        assert a.params["activations"] == ("torch hook" if layer == "Conv.0" else "onnxruntime")
        cam = LayerGradCam(net, net.get_submodule(a.params["layer"])).attribute(
            as_batch(net, x), target=a.target, relu_attributions=True)
        ref = LayerAttribution.interpolate(cam, (9, 9), "bilinear")[0, 0].detach().cpu().numpy()
        np.testing.assert_allclose(a.map, ref, rtol=1e-5, atol=1e-6 * max(np.abs(ref).max(), 1.0))
        one = attribute(model, x, a.target, "gradcam", **params).map  # a batch of 1: equal up to float noise
        np.testing.assert_allclose(a.map, one, rtol=1e-5, atol=1e-7)


def test_attribute_batch_runs_other_methods_one_by_one_and_checks_its_input(tiny_conv, rng):
    model, _ = tiny_conv
    xs = rng.normal(size=(2, 2, 9, 9)).astype(np.float32)
    assert "guided_backprop" not in BATCHED
    got = attribute_batch(model, xs, None, "guided_backprop")
    for x, a in zip(xs, got):
        assert a.target == int(model.logits(x[None])[0].argmax())
        np.testing.assert_array_equal(a.map, attribute(model, x, a.target, "guided_backprop").map)
    with pytest.raises(ValueError, match="shape"):
        attribute_batch(model, xs[0])  # one input, not a batch
    with pytest.raises(ValueError, match="empty"):
        attribute_batch(model, xs[:0])
    with pytest.raises(ValueError, match="one per input"):
        attribute_batch(model, xs, [1])
    with pytest.raises(ValueError, match="one per input"):
        attribute_batch(model, xs, [0.5, 1.0])
    with pytest.raises(ValueError, match=r"targets \[7\]"):
        attribute_batch(model, xs, [1, 7])
    with pytest.raises(ValueError, match="NaN"):
        attribute_batch(model, np.where(np.arange(xs.size).reshape(xs.shape) == 3, np.nan, xs))
    with pytest.raises(ValueError, match="choose one of"):
        attribute_batch(model, xs, None, "nope")
    with pytest.raises(ValueError, match="batch"):
        attribute_batch(model, xs, None, "gradient", batch=0)


# ---- EfficientNet-Lite0 on a real photo -------------------------------------
@pytest.mark.slow
def test_lite0_gradcam_gradient_and_gbp_on_the_cat(lite0, cat):
    model, _ = lite0
    before = model.proto.SerializeToString()
    for method in ["gradcam", "gradient", "guided_backprop"]:
        a = attribute(model, cat, method=method)
        assert a.map.shape == (224, 224) and a.map.dtype == np.float32, method
        assert np.isfinite(a.map).all() and a.map.std() > 0, method
        if method == "gradcam":
            assert a.params["layer"] == "_conv_head/Conv" and a.params["layer_shape"][1:] == [7, 7]
            assert a.params["activations"] == "onnxruntime"
        if method == "guided_backprop":
            assert a.params["guided_units"] == 33  # every Clip(0, 6) of Lite0
    assert model.proto.SerializeToString() == before


@pytest.mark.slow
def test_lite0_fast_torch_and_batches_on_real_photos(lite0, cat):
    """The checked conversion reads the normalised graph (Lite0's run-time pad arithmetic
    folded away: no Shape, Gather, Slice or Concat module left), the fast copy computes the
    same gradients, and the batched forms agree with single calls."""
    model, _ = lite0
    fast, full = fast_torch(model), full_torch(model)
    assert fast is not full
    kinds = {type(m).__name__ for m in full.modules()}
    assert not kinds & {"OnnxShape", "OnnxGather", "OnnxSlice", "OnnxConcat"}, kinds
    assert full.smug_conversion["path"] == "onnx2torch" and full.smug_conversion["probe_error"] < 1e-4
    xs = np.stack([cat, cat[:, :, ::-1]])  # the photo and its mirror image
    targets = model.logits(xs).argmax(axis=1)

    def agree(a: np.ndarray, b: np.ndarray) -> None:
        # float noise may flip a ReLU6 that sits exactly at a kink: its receptive field's
        # gradient changes (a few hundred of 150,528 entries); everything else agrees
        assert np.isclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max()).mean() > 0.99
        assert np.linalg.norm(a - b) <= 0.01 * np.linalg.norm(b)

    for x, t in zip(xs, targets):
        agree(_grad(fast, x, t), _grad(full, x, t))
    for method in ("gradient", "gradcam"):
        batch = attribute_batch(model, xs, None, method)
        assert [a.target for a in batch] == list(targets), method
        for x, a in zip(xs, batch):
            agree(a.map, attribute(model, x, a.target, method).map)
