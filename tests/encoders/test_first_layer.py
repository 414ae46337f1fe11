import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from smug.encoders.first_layer import UnsupportedModel, check_against_runtime, check_first_layer, find_first_layer
from smug.models.runtime import OnnxModel


def reference_preactivation(x, p):
    """Plain loops: Pad(top 1, right 1), conv pads (1, 0, 0, 1), stride 2, then BatchNorm."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}
    C, H, W = x.shape
    xp = np.zeros((C, H + 2, W + 2))  # top 1+1, bottom 0, left 0, right 1+1
    xp[:, 2 : 2 + H, 0:W] = x
    K = p["W"].shape[0]
    OH = (xp.shape[1] - 3) // 2 + 1
    OW = (xp.shape[2] - 3) // 2 + 1
    out = np.zeros((K, OH, OW))
    for k in range(K):
        for i in range(OH):
            for j in range(OW):
                z = (p["W"][k].astype(np.float64) * xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]).sum() + p["b"][k]
                s = p["scale"][k] / np.sqrt(p["var"][k] + p["eps"])
                out[k, i, j] = s * (z - p["mean"][k]) + p["shift"][k]
    return out


def test_conv_layer_matches_plain_loops_and_onnxruntime(tiny_conv, rng):
    model, params = tiny_conv
    layer = find_first_layer(model)
    assert layer.kind == "conv" and layer.activation == "Relu"
    assert layer.pads == (2, 0, 0, 2) and layer.stride == (2, 2)
    x = rng.normal(size=model.input_shape).astype(np.float32)
    np.testing.assert_allclose(layer.preactivation(x), reference_preactivation(x, params), rtol=1e-9, atol=1e-9)
    assert check_against_runtime(model, layer, x) < 1e-6


def test_rows_reproduce_the_bias_free_preactivation(tiny_conv, rng):
    model, _ = tiny_conv
    layer = find_first_layer(model)
    x = rng.normal(size=model.input_shape)
    neurons = rng.choice(layer.n_neurons, size=20, replace=False)
    z = layer.preactivation(x, with_bias=False).ravel()
    np.testing.assert_allclose(layer.rows(neurons) @ x.ravel(), z[neurons], rtol=1e-12, atol=1e-12)


def test_dense_first_layer_of_the_mnist_mlp(mnist, mnist_test_split):
    layer = find_first_layer(mnist)
    assert layer.kind == "dense" and layer.weight.shape == (32, 784)
    x = mnist_test_split[0][0]
    assert check_against_runtime(mnist, layer, x) < 1e-6


@pytest.mark.slow
def test_lite0_stem_matches_onnxruntime_on_a_real_photo(lite0, cat):
    model, _ = lite0
    layer = find_first_layer(model)
    assert layer.kind == "conv" and layer.output_shape == (32, 112, 112)
    assert layer.pads == (0, 0, 1, 1) and layer.activation == "Clip"
    assert check_against_runtime(model, layer, cat) < 1e-5


def sigmoid_only() -> OnnxModel:
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    return OnnxModel.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_unsupported_first_layer_is_named():
    with pytest.raises(UnsupportedModel, match="Sigmoid"):
        find_first_layer(sigmoid_only())


def test_check_first_layer_gives_the_reason_or_none(tiny_conv, mnist):
    reason = check_first_layer(sigmoid_only())
    assert isinstance(reason, str) and "Sigmoid" in reason
    assert check_first_layer(tiny_conv[0]) is None and check_first_layer(mnist) is None


def test_a_first_layer_that_is_not_linear_is_one_clear_line(tmp_path):
    """Issue 26: a graph that scales its input (Mul) before the first Conv is refused by the CLI in
    one ``smug: error:`` line naming the operator, exit 2, nothing written."""
    import subprocess
    import sys

    from smug.models.zoo import ASSETS, HERE

    proto = onnx.load(str(HERE / "mnist-cnn.onnx"))
    g = proto.graph
    for node in g.node:
        node.input[:] = ["scaled" if i == g.input[0].name else i for i in node.input]
    g.node.insert(0, onnx.helper.make_node("Mul", [g.input[0].name, "two"], ["scaled"]))
    g.initializer.append(onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    onnx.save(proto, str(tmp_path / "scaled.onnx"))
    r = subprocess.run([sys.executable, "-m", "smug", "explain", str(ASSETS / "mnist-digit.png"), "--model",
                        str(tmp_path / "scaled.onnx"), "--preprocess", '{"crop": 28, "scale": 255, "grayscale": true}',
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("smug: error: the input first meets 'Mul', not a linear layer")
    assert not (tmp_path / "out").exists()
