"""RectGrad, LRP z+ and DTD z^B, each against a plain reference: zennit's rules
(``ZPlus``, ``ZBox``, ``Pass``, BatchNorm canonizer) on separately built torch
modules, a numpy RectGrad (paper 004 Eq. 15) and captum's InputXGradient /
GuidedBackprop for RectGrad's two exact special cases, plus relevance conservation."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from smug.baselines.attribution import METHODS, attribute, full_torch, methods
from smug.baselines.modified_backprop import lrp_torch, rectgrad_torch
from smug.models.runtime import OnnxModel
from smug.models.torch_backend import convert, torch_module

MODIFIED_METHODS = ["rectgrad", "lrp_zplus", "dtd_zb"]


# ---- small ONNX nets ------------------------------------------------------------
def make_model(nodes, inits, in_shape, classes, name):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return OnnxModel.from_proto(proto, name)


def relu_mlp(sizes=(2 * 4 * 4, 24, 16, 5), in_shape=(2, 4, 4), seed=3, act="Relu", last_row_nonneg=None):
    """Flatten -> (Gemm -> act)* -> Gemm, random weights (row ``last_row_nonneg`` of
    the last layer made nonnegative when given)."""
    from onnx import helper

    r = np.random.default_rng(seed)
    nodes, inits, prev = [helper.make_node("Flatten", ["x"], ["h0"], axis=1)], {}, "h0"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = (r.normal(size=(n_out, n_in)) / np.sqrt(n_in) * 2).astype(np.float32)
        if i == len(sizes) - 2 and last_row_nonneg is not None:
            W[last_row_nonneg] = np.abs(W[last_row_nonneg])
        inits[f"W{i}"], inits[f"b{i}"] = W, (0.3 * r.normal(size=n_out)).astype(np.float32)
        out = "logits" if i == len(sizes) - 2 else f"z{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [out], transB=1))
        if out != "logits":
            nodes.append(helper.make_node(act, [out], [f"a{i}"]))
            prev = f"a{i}"
    return make_model(nodes, inits, in_shape, sizes[-1], "relu_mlp")


def residual_net(seed=5):
    """Conv(3x3) -> Relu -> depthwise Conv -> Clip(0, 6) -> Conv(1x1) -> Add(skip)
    -> GlobalAveragePool -> Flatten -> Gemm, random weights."""
    from onnx import helper

    r = np.random.default_rng(seed)
    w = {
        "W1": r.normal(size=(4, 3, 3, 3)), "b1": 0.3 * r.normal(size=4),
        "Wd": r.normal(size=(4, 1, 3, 3)), "bd": 0.3 * r.normal(size=4),
        "Wp": r.normal(size=(4, 4, 1, 1)), "bp": 0.3 * r.normal(size=4),
        "G": r.normal(size=(3, 4)), "g": 0.3 * r.normal(size=3),
        "lo": np.array(0.0), "hi": np.array(6.0),
    }
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [
        helper.make_node("Conv", ["x", "W1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["a1"]),
        helper.make_node("Conv", ["a1", "Wd", "bd"], ["cd"], pads=[1, 1, 1, 1], group=4),
        helper.make_node("Clip", ["cd", "lo", "hi"], ["a2"]),
        helper.make_node("Conv", ["a2", "Wp", "bp"], ["p"]),
        helper.make_node("Add", ["p", "a1"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["m"]),
        helper.make_node("Flatten", ["m"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "G", "g"], ["logits"], transB=1),
    ]
    return make_model(nodes, w, (3, 6, 6), 3, "residual"), w


# ---- references --------------------------------------------------------------------
def as_batch(net, x: np.ndarray):
    torch = torch_module()
    return torch.as_tensor(np.array(x[None], dtype=np.float32), device=next(net.parameters()).device)


def zennit_lrp(net, x, target, input_rule="zb", low=None, high=None, bias=False, canonizers=None, extra=()):
    """Relevance (C, H, W) / (D,) of ``net`` by zennit: ZPlus (biases zeroed unless
    ``bias``) on Linear/Conv, ZBox(low, high) on the first one when ``input_rule="zb"``,
    Pass on activations; relevance starts at the target logit."""
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite, SpecialFirstLayerMapComposite
    from zennit.rules import Pass, ZBox, ZPlus
    from zennit.types import Activation
    from zennit.types import Linear as AnyLinear

    layer_map = [(Activation, Pass()), *extra, (AnyLinear, ZPlus() if bias else ZPlus(zero_params="bias"))]
    if input_rule == "zb":
        composite = SpecialFirstLayerMapComposite(layer_map, [(AnyLinear, ZBox(low, high))], canonizers=canonizers)
    else:
        composite = LayerMapComposite(layer_map, canonizers=canonizers)
    xt = as_batch(net, x).requires_grad_(True)
    with Gradient(net, composite) as attributor:
        out, rel = attributor(xt, lambda o: o.detach() * onehot(o, target))
    return out[0].detach().cpu().numpy(), rel[0].detach().cpu().numpy()


def onehot(out, target):
    torch = torch_module()
    m = torch.zeros_like(out)
    m[:, target] = 1
    return m


def sum_channels(a):
    return a.sum(axis=0) if a.ndim == 3 else a


def tiny_conv_sequential(tiny_proto_params, proto):
    """The tiny_conv fixture's net as a plain torch Sequential from its ONNX weights:
    both pads (Pad top/right 1, Conv pads top 1/right 1) as one ZeroPad2d.

    The BatchNorm holds ``var + eps`` with ``eps = 0`` (the same function): zennit
    0.5.1's ``MergeBatchNorm`` turns a merged BatchNorm into "identity" by setting
    ``running_var = 1`` but keeps its ``eps``, so with the fixture's ``eps = 1e-3`` it
    would scale the forward pass and the relevance by ``1/sqrt(1 + eps)`` each
    (0.1 % in all); with ``eps = 0`` its identity is exact."""
    from onnx import numpy_helper

    torch = torch_module()
    nn = torch.nn
    p = tiny_proto_params
    G = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}["G"]
    conv = nn.Conv2d(2, 3, 3, stride=2)
    bn = nn.BatchNorm2d(3, eps=0.0)
    fc = nn.Linear(G.shape[1], G.shape[0])
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(p["W"]))
        conv.bias.copy_(torch.as_tensor(p["b"]))
        bn.weight.copy_(torch.as_tensor(p["scale"]))
        bn.bias.copy_(torch.as_tensor(p["shift"]))
        bn.running_mean.copy_(torch.as_tensor(p["mean"]))
        bn.running_var.copy_(torch.as_tensor(p["var"]) + torch.tensor(p["eps"], dtype=torch.float32))
        fc.weight.copy_(torch.as_tensor(G.copy()))
        fc.bias.zero_()
    net = nn.Sequential(nn.ZeroPad2d((0, 2, 2, 0)), conv, bn, nn.ReLU(), nn.Flatten(), fc).eval()
    for t in net.parameters():
        t.requires_grad_(False)
    return net.to(full_device())


def full_device():
    from smug.models.torch_backend import device

    return device()


def padded_bounds(value, channels=2, size=9):
    """A (1, C, 11, 11) bound for the tiny_conv Conv input: ``value`` on the pixels,
    0 on the padding (its constant zeros)."""
    torch = torch_module()
    t = torch.as_tensor(np.broadcast_to(np.asarray(value, np.float32), (1, channels, size, size)).copy())
    return torch.nn.functional.pad(t, (0, 2, 2, 0)).to(full_device())


def mlp_layers(model: OnnxModel):
    """[(W (out, in), b)] of a Flatten -> (Gemm -> Relu)* -> Gemm ONNX MLP, float64."""
    from onnx import helper, numpy_helper

    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.proto.graph.initializer}
    layers = []
    for node in model.proto.graph.node:
        if node.op_type == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            W = inits[node.input[1]]
            layers.append((W if attrs.get("transB", 0) else W.T, inits[node.input[2]]))
    return layers


def rectgrad_numpy(layers, x, target, percentile=None, tau=None):
    """Paper 004 Eq. 15 on a ReLU MLP: ``r <- W^T (M (r * 1[A r > tau]))`` per layer,
    ``tau`` the layer's percentile of ``A * r`` (or the given absolute ``tau``);
    then ``sum_c ReLU(x * r_0)``."""
    acts, pre = [x.ravel().astype(np.float64)], []
    for W, b in layers[:-1]:
        pre.append(W @ acts[-1] + b)
        acts.append(np.maximum(pre[-1], 0))
    r = layers[-1][0][target].copy()
    for i in reversed(range(len(layers) - 1)):
        s = acts[i + 1] * r
        t = tau if tau is not None else np.percentile(s, percentile)
        r = layers[i][0].T @ (r * (s > t) * (pre[i] > 0))
    return sum_channels(np.maximum(x.astype(np.float64) * r.reshape(x.shape), 0))


# ---- registry ------------------------------------------------------------------------
def test_registered_with_one_function_for_lrp_and_dtd(tiny_conv, conv_input):
    model, _ = tiny_conv
    assert set(MODIFIED_METHODS) <= set(methods())
    assert METHODS["dtd_zb"] is METHODS["lrp_zplus"]
    a, b = attribute(model, conv_input, 1, "lrp_zplus"), attribute(model, conv_input, 1, "dtd_zb")
    np.testing.assert_array_equal(a.map, b.map)
    assert a.params["input_rule"] == "zb" and a.map.shape == (9, 9) and a.map.dtype == np.float32
    for bad in [{"input_rule": "nope"}, {"epsilon": 0}, {"low": 0.0}]:
        with pytest.raises(ValueError):
            attribute(model, conv_input, 1, "lrp_zplus", **bad)
    for bad in [{"percentile": 101}, {"percentile": -1}, {"tau": float("nan")}]:
        with pytest.raises(ValueError):
            attribute(model, conv_input, 1, "rectgrad", **bad)


# ---- LRP vs zennit ---------------------------------------------------------------------
@pytest.mark.parametrize("input_rule", ["zb", "zplus"])
@pytest.mark.parametrize("bias", [False, True])
def test_lrp_equals_zennit_on_the_mnist_mlp(input_rule, bias, mnist, digit):
    net = convert(copy.deepcopy(mnist.proto))  # an independent conversion: nn.Linear (Gemm) layers
    assert sum(isinstance(m, torch_module().nn.Linear) for m in net.modules()) == 2
    for target in range(3):
        ours = attribute(mnist, digit, target, "lrp_zplus", input_rule=input_rule, bias=bias)
        logits, ref = zennit_lrp(net, digit, target, input_rule, low=0.0, high=1.0, bias=bias)
        if input_rule == "zb":  # default bounds: MNIST preprocessing pixel/255 -> [0, 1]
            assert (ours.params["low"], ours.params["high"]) == (0.0, 1.0)
            assert ours.params["bounds_from"] == "zoo preprocessing of 'mnist-mlp'" and ours.params["input_in_bounds"]
        assert ours.params["relevance_start"] == pytest.approx(float(logits[target]), rel=1e-6)
        np.testing.assert_allclose(ours.map, ref[0], rtol=1e-5, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("input_rule", ["zb", "zplus"])
@pytest.mark.parametrize("bias", [False, True])
def test_lrp_equals_zennit_on_tiny_conv(input_rule, bias, tiny_conv, conv_input):
    """BatchNorm (negative scales included) folded by zennit's canonizer on a plain
    Sequential built from the ONNX weights; z^B bounds 0 on the padding."""
    from zennit.canonizers import SequentialMergeBatchNorm

    model, params = tiny_conv
    net = tiny_conv_sequential(params, model.proto)
    with torch_module().no_grad():
        np.testing.assert_allclose(net(as_batch(net, conv_input)).cpu().numpy(), model.logits(conv_input[None]),
                                   rtol=1e-5, atol=1e-5)  # the same network
    low, high = -4.0, 4.0
    assert conv_input.min() > low and conv_input.max() < high
    for target in range(4):
        ours = attribute(model, conv_input, target, "lrp_zplus", input_rule=input_rule, low=low, high=high, bias=bias)
        assert ours.params["batchnorms_folded"] == 1 and ours.params["first_layers"] == ["Conv.1"]
        _, ref = zennit_lrp(net, conv_input, target, input_rule, padded_bounds(low), padded_bounds(high), bias,
                            canonizers=[SequentialMergeBatchNorm()])
        np.testing.assert_allclose(ours.map, ref.sum(0), rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_zb_with_per_channel_bounds_equals_zennit(tiny_conv, conv_input):
    from zennit.canonizers import SequentialMergeBatchNorm

    model, params = tiny_conv
    net = tiny_conv_sequential(params, model.proto)
    low, high = np.array([-3.0, -5.0]).reshape(2, 1, 1), np.array([4.0, 3.0]).reshape(2, 1, 1)
    ours = attribute(model, conv_input, 2, "dtd_zb", low=low, high=high)
    assert ours.params["bounds_from"] == "given" and ours.params["input_in_bounds"]
    _, ref = zennit_lrp(net, conv_input, 2, "zb", padded_bounds(low), padded_bounds(high),
                        canonizers=[SequentialMergeBatchNorm()])
    np.testing.assert_allclose(ours.map, ref.sum(0), rtol=1e-5, atol=1e-6 * np.abs(ref).max())
    other = attribute(model, conv_input, 2, "dtd_zb", low=-4.0, high=4.0)
    assert not np.allclose(ours.map, other.map)  # the bounds matter


def test_lrp_through_depthwise_conv_clip_add_and_pooling_equals_zennit(rng):
    """Grouped conv, ReLU6 (Pass), a residual Add and global average pooling: the
    reference maps the Add (zennit's Sum on the stacked summands) and the pooling to
    z+ on nonnegative weights, ``x_k^+ / sum x^+``, as our rules do."""
    from zennit.core import BasicHook
    from zennit.layer import Sum
    from zennit.types import AvgPool

    torch = torch_module()
    nn = torch.nn
    model, w = residual_net()

    class Reference(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.r1 = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()
            self.dw, self.r2 = nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU6()
            self.proj, self.sum, self.pool = nn.Conv2d(4, 4, 1), Sum(), nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            a1 = self.r1(self.c1(x))
            s = self.sum(torch.stack([self.proj(self.r2(self.dw(a1))), a1], dim=-1))
            return self.fc(self.pool(s).flatten(1))

    ref_net = Reference().eval()
    with torch.no_grad():
        for mod, (W, b) in [(ref_net.c1, ("W1", "b1")), (ref_net.dw, ("Wd", "bd")), (ref_net.proj, ("Wp", "bp")),
                            (ref_net.fc, ("G", "g"))]:
            mod.weight.copy_(torch.as_tensor(w[W]))
            mod.bias.copy_(torch.as_tensor(w[b]))
    ref_net = ref_net.to(full_device())
    x = rng.uniform(-1, 1, size=(3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ref_net(as_batch(ref_net, x)).cpu().numpy(), model.logits(x[None]), rtol=1e-5,
                                   atol=1e-5)
    positive_part = BasicHook(input_modifiers=[lambda t: t.clamp(min=0)])
    extra = [(Sum, positive_part), (AvgPool, positive_part)]
    for target in range(3):
        for rule in ["zb", "zplus"]:
            ours = attribute(model, x, target, "lrp_zplus", input_rule=rule, low=-1.0, high=1.0)
            assert ours.params["rules"]["add"] == 1 and ours.params["rules"]["pool"] == 1
            _, ref = zennit_lrp(ref_net, x, target, rule, -1.0, 1.0, extra=extra)
            np.testing.assert_allclose(ours.map, ref.sum(0), rtol=1e-5, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("method,units", [("guided_backprop", "guided_units"), ("rectgrad", "rectified_units")])
def test_hooked_methods_through_the_onnx_evaluator_equal_onnx2torch(method, units, rng):
    """A model whose gradients come from smug's ONNX evaluator (no converter) runs its Relu and
    Clip(0, 6) nodes as modules: Guided Backprop and RectGrad hook the same two units as on
    onnx2torch's conversion and give its map; LRP, which reads onnx2torch's layers, refuses."""
    from smug.models.torch_backend import graph_module

    model, _ = residual_net()
    evaluated = OnnxModel.from_proto(copy.deepcopy(model.proto), "evaluated")
    evaluated.derived("full_torch", lambda: graph_module(evaluated.proto).eval().to(full_device()))
    x = rng.uniform(-1, 1, size=(3, 6, 6)).astype(np.float32)
    for target in range(3):
        ours, ref = attribute(evaluated, x, target, method), attribute(model, x, target, method)
        assert ours.params[units] == ref.params[units] == 2
        np.testing.assert_allclose(ours.map, ref.map, rtol=1e-5, atol=1e-6 * np.abs(ref.map).max())
    assert not np.allclose(ours.map, attribute(evaluated, x, 2, "gradient").map)
    with pytest.raises(ValueError, match="LRP does not apply to this model: .* smug's ONNX evaluator"):
        attribute(evaluated, x, 0, "lrp_zplus")


def test_relu6_units_pass_relevance_like_zennit(rng):
    """Saturated ReLU6 units keep their relevance (Pass), where the gradient is 0."""
    model = relu_mlp(sizes=(18, 12, 4), in_shape=(2, 3, 3), act="Relu", seed=2)
    import onnx

    proto = copy.deepcopy(model.proto)  # Relu -> Clip(0, 6) with large weights: some units saturate
    node = [n for n in proto.graph.node if n.op_type == "Relu"][0]
    node.op_type = "Clip"
    node.input.extend(["lo", "hi"])
    proto.graph.initializer.extend([onnx.numpy_helper.from_array(np.array(v, np.float32), n)
                                    for n, v in [("lo", 0.0), ("hi", 6.0)]])
    for init in proto.graph.initializer:
        if init.name == "W0":
            init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 6, "W0"))
    model = OnnxModel.from_proto(proto, "clip_mlp")
    x = rng.normal(size=(2, 3, 3)).astype(np.float32)
    W0, b0 = mlp_layers(model)[0]
    assert (W0 @ x.ravel() + b0 > 6).any()
    net = convert(copy.deepcopy(model.proto))
    for target in range(4):
        ours = attribute(model, x, target, "lrp_zplus", input_rule="zplus")
        _, ref = zennit_lrp(net, x, target, "zplus")
        np.testing.assert_allclose(ours.map, ref.sum(0), rtol=1e-5, atol=1e-6 * np.abs(ref).max())
        assert ours.params["conservation_error"] < 1e-5


def zplus_numpy(W, x, R, eps=1e-6):
    """Paper 004 Eq. 10 for ``y = W x``: ``R_i = sum_j (x_i w_ji)^+ / stab(sum_k (x_k w_jk)^+) R_j``."""
    Z = np.maximum(W * x[None, :], 0)
    den = Z.sum(axis=1)
    return (Z / (den + eps * np.where(den >= 0, 1, -1))[:, None] * R[:, None]).sum(axis=0)


def test_batchnorm_after_a_relu_is_a_diagonal_zplus_layer(rng):
    """Gemm -> Relu -> BatchNorm -> Gemm: the BatchNorm cannot be folded, so it is the
    diagonal layer ``y = k a + c`` under z+ (its output is signed); numpy reference."""
    from onnx import helper

    r = np.random.default_rng(7)
    w = {"W0": r.normal(size=(6, 8)), "b0": 0.3 * r.normal(size=6), "s": r.uniform(-1.5, 1.5, 6),
         "t": r.normal(size=6), "mu": r.normal(size=6), "var": r.uniform(0.5, 2, 6), "W1": r.normal(size=(3, 6)),
         "b1": r.normal(size=3)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W0", "b0"], ["z"], transB=1),
        helper.make_node("Relu", ["z"], ["a"]),
        helper.make_node("BatchNormalization", ["a", "s", "t", "mu", "var"], ["y"], epsilon=1e-3),
        helper.make_node("Gemm", ["y", "W1", "b1"], ["logits"], transB=1),
    ]
    model = make_model(nodes, w, (2, 2, 2), 3, "bn_after_relu")
    v = {k: a.astype(np.float64) for k, a in w.items()}
    for trial in range(3):
        x = rng.normal(size=(2, 2, 2)).astype(np.float32)
        a = np.maximum(v["W0"] @ x.ravel() + v["b0"], 0)
        k = v["s"] / np.sqrt(v["var"] + 1e-3)
        y = k * a + v["t"] - v["mu"] * k
        logits = v["W1"] @ y + v["b1"]
        np.testing.assert_allclose(model.logits(x[None])[0], logits, rtol=1e-5, atol=1e-5)
        for target in range(3):
            R_y = zplus_numpy(v["W1"], y, np.eye(3)[target] * logits[target])
            ka = np.maximum(k * a, 0)
            R_a = ka / (ka + 1e-6) * R_y
            ref = zplus_numpy(v["W0"], x.ravel().astype(np.float64), R_a).reshape(x.shape).sum(0)
            ours = attribute(model, x, target, "lrp_zplus", input_rule="zplus")
            assert ours.params["batchnorms_folded"] == 0 and ours.params["rules"]["batchnorm"] == 1
            np.testing.assert_allclose(ours.map, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


# ---- conservation -----------------------------------------------------------------------
@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_lrp_conserves_the_target_logit(which, request, digit, conv_input):
    """Biases are left out of the rules, so every layer passes on all it receives (no
    denominator is 0 here): the input relevance sums to the target logit (from
    onnxruntime); for a positive logit and ``low <= x <= high`` it is nonnegative."""
    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    logits = model.logits(x[None])[0].astype(np.float64)
    gaps = []
    for target in range(4):
        for rule in ["zb", "zplus"]:
            a = attribute(model, x, target, "lrp_zplus", input_rule=rule)
            assert float(a.map.sum()) == pytest.approx(logits[target], rel=1e-5, abs=1e-5)
            assert a.params["conservation_error"] < 1e-5
            if logits[target] > 0:
                assert a.map.min() >= -1e-7 * abs(logits[target])
            if rule == "zb":  # MNIST: zoo bounds; tiny_conv has no zoo entry: the input's own range
                assert a.params["bounds_from"] == ("zoo preprocessing of 'mnist-mlp'" if which == "mnist"
                                                   else "input min/max")
        with_bias = attribute(model, x, target, "lrp_zplus", input_rule="zplus", bias=True)
        if logits[target] > 0:  # positive biases in the denominators absorb relevance
            assert 0 <= with_bias.params["relevance_sum"] <= logits[target] * (1 + 1e-6)
            gaps.append(1 - with_bias.params["relevance_sum"] / logits[target])
    assert gaps and max(gaps) > 1e-3, gaps


# ---- RectGrad ----------------------------------------------------------------------------
@pytest.mark.parametrize("percentile", [98, 90, 50, 0])
def test_rectgrad_equals_numpy_eq15_on_a_two_hidden_layer_mlp(percentile, rng):
    model = relu_mlp()
    layers = mlp_layers(model)
    for trial in range(3):
        x = rng.normal(size=(2, 4, 4)).astype(np.float32)
        for target in range(5):
            ours = attribute(model, x, target, "rectgrad", percentile=percentile)
            ref = rectgrad_numpy(layers, x, target, percentile=percentile)
            np.testing.assert_allclose(ours.map, ref, rtol=1e-4, atol=1e-5 * max(np.abs(ref).max(), 1e-3))
            assert ours.params["rectified_units"] == 2 and len(ours.params["thresholds"]) == 2
            assert ours.map.min() >= 0


def test_rectgrad_equals_numpy_on_the_mnist_mlp(mnist, digit):
    layers = mlp_layers(mnist)
    for percentile in [98, 0]:
        for target in range(3):
            ours = attribute(mnist, digit, target, "rectgrad", percentile=percentile)
            ref = rectgrad_numpy(layers, digit, target, percentile=percentile)
            np.testing.assert_allclose(ours.map, ref, rtol=1e-4, atol=1e-6 * max(np.abs(ref).max(), 1e-3))


@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_rectgrad_special_cases_equal_captum(which, request, digit, conv_input):
    """``tau=-inf``: ReLU(gradient x input); ``tau=0``: ReLU(x * Guided Backprop's r_0)
    (paper 004 Eqs. 6 and 7), by captum on an independent conversion."""
    from captum.attr import GuidedBackprop, InputXGradient

    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    net = convert(copy.deepcopy(model.proto))
    xt = as_batch(net, x)
    for target in range(3):
        ixg = InputXGradient(net).attribute(xt, target=target)[0].detach().cpu().numpy()
        ref = np.maximum(ixg, 0).sum(0)
        ours = attribute(model, x, target, "rectgrad", tau=float("-inf"))
        np.testing.assert_allclose(ours.map, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
        gbp = GuidedBackprop(net).attribute(xt, target=target)[0].detach().cpu().numpy()
        ref = np.maximum(x * gbp, 0).sum(0)
        ours = attribute(model, x, target, "rectgrad", tau=0.0)
        np.testing.assert_allclose(ours.map, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_rectgrad_percentile_0_is_gradient_times_input_where_the_minimum_is_0(rng):
    """With the target's last-layer weights >= 0 the signal r at the hidden layer is
    >= 0, so min(A r) = 0 (inactive units): the strict ``A r > tau`` drops only units
    that pass nothing, and percentile 0 is exactly ReLU(x * dF/dx).  On the MNIST MLP
    the minimum is negative and percentile 0 drops that unit (numpy test above)."""
    from captum.attr import InputXGradient

    model = relu_mlp(sizes=(2 * 4 * 4, 24, 5), last_row_nonneg=1)
    net = convert(copy.deepcopy(model.proto))
    for trial in range(3):
        x = rng.normal(size=(2, 4, 4)).astype(np.float32)
        ours = attribute(model, x, 1, "rectgrad", percentile=0)
        assert ours.params["thresholds"] == [0.0]
        ixg = InputXGradient(net).attribute(as_batch(net, x), target=1)[0].detach().cpu().numpy()
        ref = np.maximum(ixg, 0).sum(0)
        np.testing.assert_allclose(ours.map, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_rectgrad_percentile_changes_the_map(mnist, digit):
    maps = [attribute(mnist, digit, 7, "rectgrad", percentile=q).map for q in (0, 90, 98, 100)]
    assert all(m.min() >= 0 for m in maps)
    assert not np.allclose(maps[0], maps[2]) and not np.allclose(maps[1], maps[2])
    assert np.all(maps[3] == 0)  # tau = max: nothing passes


# ---- unsupported ops, untouched models -----------------------------------------------------
def test_lrp_refuses_unsupported_operations(rng):
    model = relu_mlp(sizes=(8, 6, 3), in_shape=(2, 2, 2), act="Sigmoid")
    with pytest.raises(ValueError, match="does not support .*Sigmoid"):
        attribute(model, rng.normal(size=(2, 2, 2)).astype(np.float32), 0, "lrp_zplus")


@pytest.mark.parametrize("which", ["mnist", "tiny_conv"])
def test_models_are_unchanged(which, request, digit, conv_input):
    model, x = (request.getfixturevalue("mnist"), digit) if which == "mnist" else (
        request.getfixturevalue("tiny_conv")[0], conv_input)
    before = model.proto.SerializeToString()
    logits = model.logits(x[None])
    plain = attribute(model, x, 0, "gradient").map
    for method in MODIFIED_METHODS:
        attribute(model, x, 0, method)
        assert model.proto.SerializeToString() == before, method
    np.testing.assert_array_equal(attribute(model, x, 0, "gradient").map, plain)  # no hooks on full_torch
    torch = torch_module()
    net = full_torch(model)
    assert not any(isinstance(m, torch.nn.Identity) for m in net.modules())  # BatchNorm not folded there
    with torch.no_grad():
        np.testing.assert_allclose(net(as_batch(net, x)).cpu().numpy(), logits, rtol=1e-5, atol=1e-5)
    assert lrp_torch(model)[0] is not net and rectgrad_torch(model)[0] is not net


# ---- EfficientNet-Lite0 on a real photo ------------------------------------------------------
@pytest.mark.slow
def test_lite0_on_the_cat(lite0, cat):
    """Runs through depthwise convs, ReLU6, residual Adds and pooling.  z+ ignores the
    folded-BatchNorm biases, so relevance reaching a unit whose positive contributions
    are all 0 (e.g. a depthwise channel with a nonpositive kernel, kept active by
    its bias) is lost: the sum is below the logit, never above."""
    model, _ = lite0
    before = model.proto.SerializeToString()
    r = attribute(model, cat, method="rectgrad")
    assert r.map.shape == (224, 224) and r.map.min() >= 0 and r.map.std() > 0
    assert r.params["rectified_units"] == 33
    a = attribute(model, cat, r.target, "lrp_zplus")
    assert a.params["bounds_from"] == "zoo preprocessing of 'efficientnet-lite0'"
    assert a.params["low"] == pytest.approx(-127 / 128) and a.params["high"] == 1.0 and a.params["input_in_bounds"]
    assert a.params["rules"]["add"] == 9 and a.params["rules"]["pool"] == 1 and a.params["rules"]["linear"] == 50
    start = a.params["relevance_start"]
    assert start > 0 and 0 < a.params["relevance_sum"] <= start * (1 + 1e-5)
    assert a.map.shape == (224, 224) and np.isfinite(a.map).all() and a.map.min() >= -1e-6 * start
    assert model.proto.SerializeToString() == before


@pytest.mark.parametrize("input_rule", ["zb", "zplus"])
def test_lrp_on_an_exported_batchnorm_cnn_equals_zennit(input_rule, tmp_path):
    """Issue 26: a torch CNN with two Conv-BatchNorm-ReLU blocks exported by the TorchScript
    exporter at opset 17 with its BatchNorms kept (the graph onnx2torch cannot read as exported):
    smug folds each BatchNorm into its Conv before z+ / z^B, as zennit's canonizer does on the
    torch module itself."""
    from zennit.canonizers import SequentialMergeBatchNorm

    from smug.models.runtime import OnnxModel

    torch = torch_module()
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.Conv2d(6, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Flatten(), nn.Linear(8 * 5 * 5, 4))
    for bn in (net[1], net[4]):  # trained-looking statistics, negative scales included
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(-1.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    path = tmp_path / "bn-cnn.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 12, 12), str(path), dynamo=False, opset_version=17,
                      do_constant_folding=False, input_names=["input"], output_names=["logits"])
    model = OnnxModel.load(path)
    assert [n.op_type for n in model.proto.graph.node].count("BatchNormalization") == 2
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, 12, 12)).astype(np.float32)
    for target in range(4):
        ours = attribute(model, x, target, "lrp_zplus", input_rule=input_rule, low=-1.0, high=1.0)
        assert ours.params["batchnorms_folded"] == 2
        bound = torch.ones(1, 3, 12, 12, device=full_device())
        _, ref = zennit_lrp(net, x, target, input_rule, -bound, bound, canonizers=[SequentialMergeBatchNorm()])
        # zennit keeps a merged BatchNorm's eps (1e-5): a relative 1e-5 per BatchNorm
        np.testing.assert_allclose(ours.map, ref.sum(0), rtol=1e-4, atol=1e-5 * np.abs(ref).max())
