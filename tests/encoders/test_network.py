import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from smug.encoders.first_layer import UnsupportedModel
from smug.encoders.network import (
    SUPPORTED_OPS, NetworkConfig, check_network_against_runtime, encode_network, network_layers, unsupported_ops,
)
from smug.models.runtime import OnnxModel


def test_conv_network_unrolls_to_dense_layers_matching_onnxruntime(tiny_conv, rng):
    model, _ = tiny_conv
    layers = network_layers(model)
    assert [l.relu for l in layers] == [True, False]
    x = rng.normal(size=model.input_shape).astype(np.float32)
    p = encode_network(model, x, window=3)
    assert check_network_against_runtime(model, p, rng.normal(size=(8,) + model.input_shape)) < 1e-5


def test_mnist_mlp_layers_and_prediction(mnist, mnist_test_split):
    x = mnist_test_split[0][:20]
    p = encode_network(mnist, x[0])
    assert [l.weight.shape for l in p.layers] == [(32, 784), (10, 32)]
    assert p.target == int(mnist.logits(x[:1])[0].argmax()) and p.n_vars == 784
    assert check_network_against_runtime(mnist, p, x) < 1e-5


def test_unsupported_nodes_are_named():
    W = numpy_helper.from_array(np.ones((3, 4), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W"], ["z"], transB=1), helper.make_node("Sigmoid", ["z"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [W],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedModel, match="Sigmoid"):
        network_layers(OnnxModel.from_proto(proto))


def test_bad_delta_and_target_are_rejected(mnist, mnist_test_split):
    x = mnist_test_split[0][0]
    with pytest.raises(ValueError, match="delta"):
        encode_network(mnist, x, delta=-1.0)
    with pytest.raises(ValueError, match="target"):
        encode_network(mnist, x, target=10)


@pytest.mark.parametrize("bad, name", [
    (dict(window=0), "window"), (dict(window=True), "window"), (dict(window=2.5), "window"),
    (dict(delta=-0.5), "delta"), (dict(delta=float("nan")), "delta"), (dict(delta=float("inf")), "delta"),
    (dict(baseline=float("nan")), "baseline"), (dict(baseline=float("inf")), "baseline"),
    (dict(min_confidence=0.0), "min_confidence"), (dict(min_confidence=1.0), "min_confidence"),
    (dict(min_confidence=-0.1), "min_confidence"), (dict(min_confidence=1.5), "min_confidence"),
])
def test_network_config_rejects_bad_values(bad, name):
    with pytest.raises(ValueError, match=name):
        NetworkConfig(**bad)


def test_network_config_accepts_good_values():
    c = NetworkConfig(window=np.int64(2), delta=0.5, baseline=-1.0, min_confidence=0.9)
    assert (c.window, c.delta, c.baseline, c.min_confidence) == (2, 0.5, -1.0, 0.9)
    assert NetworkConfig() == NetworkConfig(window=1, delta=0.0, baseline=0.0, min_confidence=None)


def test_encode_network_takes_a_config_or_the_keywords(mnist, rng):
    x = rng.uniform(size=mnist.input_shape).astype(np.float32)
    by_keywords = encode_network(mnist, x, window=2, delta=0.5, baseline=0.1, min_confidence=0.8)
    by_config = encode_network(mnist, x, config=NetworkConfig(window=2, delta=0.5, baseline=0.1, min_confidence=0.8))
    assert by_config.delta == by_keywords.delta > 0.5  # min_confidence folded into delta
    np.testing.assert_array_equal(by_config.baseline, by_keywords.baseline)
    np.testing.assert_array_equal(by_config.group, by_keywords.group)
    with pytest.raises(TypeError, match="config"):
        encode_network(mnist, x, window=2, config=NetworkConfig(window=2))
    with pytest.raises(ValueError, match="min_confidence"):
        encode_network(mnist, x, min_confidence=1.0)


def test_unsupported_ops_of_the_zoo_mlp_is_empty():
    from smug.models.zoo import load_model

    assert unsupported_ops(load_model("mnist-mlp")[0]) == []


def test_max_pool_is_supported():
    assert {"MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Flatten", "Gemm"} <= SUPPORTED_OPS


# ---------------------------------------------------------------- operators against onnxruntime

def _graph(nodes, shape, inits, classes, seed=0, opset=17):
    """A model from ``nodes`` reading ``x`` (N, *shape) and writing ``y`` (N, classes)."""
    if isinstance(inits.get("G"), np.random.Generator):  # size the head: infer the flattened width
        probe = helper.make_graph(
            [n for n in nodes if n.op_type != "Gemm"], "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *shape])],
            [helper.make_tensor_value_info("flat", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items() if k != "G"])
        inferred = onnx.shape_inference.infer_shapes(helper.make_model(probe, opset_imports=[helper.make_opsetid("", opset)]))
        width = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim][1]
        inits = {**inits, "G": _w(inits["G"], classes, width)}
    graph = helper.make_graph(
        nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto, full_check=True)
    return OnnxModel.from_proto(proto, f"ops-{seed}")


def _w(r, *shape):
    return r.normal(size=shape).astype(np.float32)


def _head(r, src, classes=3):
    """Flatten -> Gemm to the logits ``y`` (the Gemm's width ``G`` is sized by shape inference in ``_graph``)."""
    return ([helper.make_node("Flatten", [src], ["flat"]), helper.make_node("Gemm", ["flat", "G", "g"], ["y"], transB=1)],
            {"G": r, "g": _w(r, classes)})


def _bn(r, c, name):
    return {f"{name}s": r.uniform(-1.5, 1.5, c).astype(np.float32), f"{name}t": _w(r, c), f"{name}m": _w(r, c),
            f"{name}v": r.uniform(0.5, 2, c).astype(np.float32)}


def _case(name: str, r):
    """(nodes, input shape, initialisers, classes) of one operator case."""
    bn = lambda src, dst, p: helper.make_node("BatchNormalization", [src, f"{p}s", f"{p}t", f"{p}m", f"{p}v"], [dst],
                                              epsilon=1e-3)
    if name == "conv_stride_pads_dilation":
        nodes = [helper.make_node("Conv", ["x", "W", "b"], ["z"], strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2]),
                 helper.make_node("Relu", ["z"], ["a"])]
        head, hi = _head(r, "a")
        return nodes + head, (2, 7, 7), {"W": _w(r, 4, 2, 3, 2), "b": _w(r, 4), **hi}
    if name == "conv_groups_same_pad":
        nodes = [helper.make_node("Conv", ["x", "W"], ["z"], group=2, auto_pad="SAME_UPPER", strides=[2, 2]),
                 helper.make_node("Relu", ["z"], ["a"])]
        head, hi = _head(r, "a")
        return nodes + head, (2, 6, 6), {"W": _w(r, 4, 1, 3, 3), **hi}
    if name == "issue_cnn":  # Conv5x5 -> BN -> Relu -> MaxPool -> Conv3x3 s2 -> Relu -> Flatten -> Gemm
        nodes = [helper.make_node("Conv", ["x", "W", "b"], ["z"]), bn("z", "zb", "n"), helper.make_node("Relu", ["zb"], ["a"]),
                 helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                 helper.make_node("Conv", ["p", "V", "c"], ["z2"], strides=[2, 2]), helper.make_node("Relu", ["z2"], ["a2"])]
        head, hi = _head(r, "a2")
        return nodes + head, (1, 14, 14), {"W": _w(r, 2, 1, 5, 5), "b": _w(r, 2), **_bn(r, 2, "n"),
                                           "V": _w(r, 3, 2, 3, 3), "c": _w(r, 3), **hi}
    if name == "maxpool_signed_overlapping_padded":  # no ReLU before: negative candidates, 3x3 windows, stride 2
        nodes = [helper.make_node("Conv", ["x", "W", "b"], ["z"]),
                 helper.make_node("MaxPool", ["z"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
        head, hi = _head(r, "p")
        return nodes + head, (1, 7, 7), {"W": _w(r, 2, 1, 2, 2), "b": _w(r, 2), **hi}
    if name == "maxpool_ceil_dilation":
        nodes = [helper.make_node("Conv", ["x", "W", "b"], ["z"]), helper.make_node("Relu", ["z"], ["a"]),
                 helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1,
                                  dilations=[1, 2])]
        head, hi = _head(r, "p")
        return nodes + head, (1, 7, 7), {"W": _w(r, 3, 1, 2, 2), "b": _w(r, 3), **hi}
    if name == "average_pools":
        nodes = [helper.make_node("Conv", ["x", "W", "b"], ["z"]), helper.make_node("Relu", ["z"], ["a"]),
                 helper.make_node("AveragePool", ["a"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                 helper.make_node("AveragePool", ["p"], ["q"], kernel_shape=[2, 2], pads=[0, 0, 1, 1],
                                  count_include_pad=1),
                 helper.make_node("Conv", ["q", "V"], ["z2"]), helper.make_node("GlobalAveragePool", ["z2"], ["g2"])]
        head, hi = _head(r, "g2")
        return nodes + head, (1, 8, 8), {"W": _w(r, 2, 1, 3, 3), "b": _w(r, 2), "V": _w(r, 4, 2, 2, 2), **hi}
    if name == "residual_add":  # a + conv(relu(conv(a))), then a residual from the signed input across a ReLU
        nodes = [helper.make_node("Conv", ["x", "W", "b"], ["z"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["z"], ["a"]),
                 helper.make_node("Conv", ["a", "V", "c"], ["z2"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["z2"], ["a2"]),
                 helper.make_node("Conv", ["a2", "U"], ["z3"], pads=[1, 1, 1, 1]),
                 helper.make_node("Add", ["a", "z3"], ["s"]), helper.make_node("Add", ["s", "xx"], ["s2"]),
                 helper.make_node("Relu", ["s2"], ["o"])]
        head, hi = _head(r, "o")
        return ([helper.make_node("Conv", ["x", "I"], ["xx"])] + nodes + head, (1, 5, 5),
                {"I": np.ones((2, 1, 1, 1), np.float32), "W": _w(r, 2, 1, 3, 3), "b": _w(r, 2), "V": _w(r, 2, 2, 3, 3),
                 "c": _w(r, 2), "U": _w(r, 2, 2, 3, 3), **hi})
    if name == "reshape_matmul_bn_sub":  # Pad, Reshape by a Shape chain, MatMul + Add, unfolded BN, Sub
        nodes = [helper.make_node("Pad", ["x", "pads"], ["xp"]), helper.make_node("Conv", ["xp", "W"], ["z"]),
                 helper.make_node("Relu", ["z"], ["a"]), bn("a", "ab", "n"),
                 helper.make_node("Shape", ["ab"], ["shp"]), helper.make_node("Gather", ["shp", "zero"], ["n0"], axis=0),
                 helper.make_node("Unsqueeze", ["n0", "axes"], ["n1"]),
                 helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
                 helper.make_node("Reshape", ["ab", "target"], ["f"]), helper.make_node("MatMul", ["f", "M"], ["mm"]),
                 helper.make_node("Add", ["mm", "mb"], ["d"]), helper.make_node("Relu", ["d"], ["e"]),
                 helper.make_node("Sub", ["e", "sb"], ["y"])]
        return nodes, (1, 4, 4), {"pads": np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64), "W": _w(r, 2, 1, 2, 2),
                                  **_bn(r, 2, "n"), "zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
                                  "minus1": np.array([-1], np.int64), "M": _w(r, 2 * 4 * 4, 3), "mb": _w(r, 3),
                                  "sb": _w(r, 3)}
    raise KeyError(name)


OPERATOR_CASES = ["conv_stride_pads_dilation", "conv_groups_same_pad", "issue_cnn", "maxpool_signed_overlapping_padded",
                  "maxpool_ceil_dilation", "average_pools", "residual_add", "reshape_matmul_bn_sub"]


@pytest.mark.parametrize("case", OPERATOR_CASES)
def test_operator_encoding_matches_onnxruntime_at_full_and_random_masks(case):
    from fractions import Fraction

    from smug.solver.certificate import exact_logits

    r = np.random.default_rng(OPERATOR_CASES.index(case))
    nodes, shape, inits, = _case(case, r)[:3]
    model = _graph(nodes, shape, inits, 3)
    x = r.normal(size=shape).astype(np.float32)
    p = encode_network(model, x, window=1, baseline=-0.25)
    masks = [np.ones(p.n_vars, bool)] + [r.random(p.n_vars) < q for q in (0.2, 0.5, 0.8)]
    inputs = np.stack([p.masked_input(m).reshape(shape) for m in masks]).astype(np.float32)
    ref = model.logits(inputs).astype(np.float64)
    scale = 1e-4 * max(1.0, np.abs(ref).max())
    assert check_network_against_runtime(model, p, inputs) < scale
    assert check_network_against_runtime(model, p, r.normal(size=(6, *shape))) < 1e-4 * max(1.0, np.abs(ref).max() * 3)
    exact = np.array([float(v) for v in exact_logits(p, p.masked_input(masks[2]))])  # the certificate's semantics
    assert np.abs(exact - ref[2]).max() < scale and all(isinstance(v, Fraction) for v in exact_logits(p, p.x))


def test_max_pool_uses_one_relu_per_halving():
    r = np.random.default_rng(0)
    nodes, shape, inits, = _case("issue_cnn", r)[:3]
    layers = network_layers(_graph(nodes, shape, inits, 3))
    # conv+relu (2x10x10), two max levels over 2x5x5 windows, conv2+relu, logits
    assert [l.relu for l in layers] == [True, True, True, True, False]
    assert layers[0].weight.shape == (200, 196)
    assert layers[1].weight.shape[0] == 50 * 4 and layers[2].weight.shape[0] == 50 * 2


@pytest.mark.parametrize("op, extra", [("Sigmoid", {}), ("LRN", {"size": 3})])
def test_other_operators_are_refused_by_node_name(op, extra):
    r = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "W"], ["z"]), helper.make_node(op, ["z"], ["a"], name="the_odd_one", **extra)]
    head, hi = _head(r, "a")
    model = _graph(nodes + head, (1, 4, 4), {"W": _w(r, 2, 1, 2, 2), **hi}, 3)
    assert unsupported_ops(model) == [op]
    with pytest.raises(UnsupportedModel, match=f"'{op}' \\(the_odd_one\\)"):
        network_layers(model)


def test_whole_network_refuses_a_model_beyond_its_budget_before_building_anything(torchvision_onnx):
    """Issue 26: ResNet-18 (only supported ops) once grew past 13 GB while being lowered; it is now
    refused up front, by name and size, from the graph's shapes alone."""
    from smug.encoders.network import MAX_RELU_UNITS, network_layers, network_size

    model = OnnxModel.load(torchvision_onnx("resnet18", "ts17", "1", 64), name="resnet18")
    size = network_size(model)
    assert size.relu_units > MAX_RELU_UNITS and not size.within_budget()
    assert size.relu_units >= 64 * 32 * 32  # the stem's ReLU alone
    with pytest.raises(UnsupportedModel, match=r"'resnet18' is beyond the whole-network encoding's budget: "
                                               rf"{size.relu_units:,} ReLU units"):
        network_layers(model)
    assert "network_layers" not in model._derived  # nothing was built or kept


def test_network_size_counts_the_units_the_runtime_computes():
    """The size estimate's ReLU units are the Relu outputs onnxruntime computes plus k - 1
    comparisons per MaxPool output; the zoo's networks are within the budget."""
    from smug.encoders.first_layer import node_attributes
    from smug.encoders.network import check_budget, network_size
    from smug.models.zoo import load_model

    for name in ("mnist-mlp", "mnist-cnn"):
        model = load_model(name)[0]
        nodes = [n for n in model.proto.graph.node if n.op_type in ("Relu", "MaxPool")]
        values = model.tensors(np.zeros((1, *model.input_shape), np.float32), [n.output[0] for n in nodes])
        want = sum(values[n.output[0]][0].size * (1 if n.op_type == "Relu" else
                                                  int(np.prod(node_attributes(n)["kernel_shape"])) - 1)
                   for n in nodes)
        assert network_size(model).relu_units == want
        check_budget(model)
