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


def test_unsupported_ops_names_max_pool():
    W = numpy_helper.from_array(np.ones((3, 4), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "W"], ["y"], transB=1)], "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [W],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto)
    model = OnnxModel.from_proto(proto)
    assert unsupported_ops(model) == ["MaxPool"]
    assert "MaxPool" not in SUPPORTED_OPS and {"Flatten", "Gemm"} <= SUPPORTED_OPS
    with pytest.raises(UnsupportedModel, match="MaxPool"):
        network_layers(model)
