"""Farm test fixtures: tiny ONNX models made here, MNIST inputs, and one 2-worker LocalCluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_mlp(path: Path, seed: int = 0) -> Path:
    """(1, 4, 4) -> Flatten -> Gemm(16, 8) -> Relu -> Gemm(8, 3): whole-network encodable."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(size=8).astype(np.float32) * 0.1, "b1")
    w2 = numpy_helper.from_array(rng.normal(size=(3, 8)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(np.zeros(3, np.float32), "b2")
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], [w1, b1, w2, b2])
    return _save(graph, path)


def memory_bomb(path: Path, gigabytes: float = 4.0) -> Path:
    """A valid classifier whose forward pass also fills a ``gigabytes`` tensor (its sum, times 0, joins the logits)."""
    n = int(gigabytes * 2**30 / 4)
    w = numpy_helper.from_array(np.ones((2, 16), np.float32), "w")
    shape = numpy_helper.from_array(np.array([n], np.int64), "shape")
    zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["g"], transB=1),
             helper.make_node("Shape", ["x"], ["xs"]),  # data-dependent: no constant folding at load
             helper.make_node("ReduceMin", ["xs"], ["one"], keepdims=1),  # 1, known only when it runs
             helper.make_node("Mul", ["shape", "one"], ["big_shape"]),
             helper.make_node("ConstantOfShape", ["big_shape"], ["big"],
                              value=numpy_helper.from_array(np.ones(1, np.float32))),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=1),
             helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Add", ["g", "z"], ["logits"])]
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])], [w, shape, zero])
    return _save(graph, path)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return tiny_mlp(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def bomb_onnx(tmp_path_factory) -> Path:
    return memory_bomb(tmp_path_factory.mktemp("models") / "bomb.onnx")


@pytest.fixture(scope="session")
def digits() -> list[np.ndarray]:
    """The demo MNIST digit and a few shifted copies (model space, (1, 28, 28))."""
    from smug.pipeline import ExplainRequest
    from smug.pipeline.inputs import load_image

    x = load_image(ExplainRequest.build(None, "mnist-mlp")).x
    return [x] + [np.roll(x, s, axis=(-2, -1)) for s in [(0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (2, 0)]]


@pytest.fixture(scope="module")
def client():
    """A real LocalCluster: 2 process workers, 1 thread each, 2 GiB each; a job may kill 2 workers (retries=1)."""
    distributed = pytest.importorskip("distributed")
    from smug.farm import cluster

    with cluster.settings(retries=1):
        with cluster.embedded(2, "2GiB") as lc, distributed.Client(lc) as c:
            yield c


@pytest.fixture
def digit_pngs(tmp_path, digits) -> list[Path]:
    """The digits as PNG files (exact: the MNIST preprocessing divides by 255)."""
    from PIL import Image

    paths = []
    for i, x in enumerate(digits):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(np.round(x[0] * 255).astype(np.uint8), mode="L").save(path)
        paths.append(path)
    return paths
