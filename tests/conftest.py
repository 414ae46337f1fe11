"""Shared fixtures: real models and real data (skipped with a clear reason when absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "solver"))  # plain references: _reference.py
sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))  # the service tests' checks: _service_checks.py

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGENET = SHARED_DATA / "imagenet-sample"


def shared_image(name: str) -> Path:
    path = IMAGENET / name
    if not path.is_file():
        pytest.skip(f"real data not found: {path} (the shared/ folder beside the project)")
    return path


@pytest.fixture(scope="session")
def mnist():
    from smug.models.zoo import load_model

    model, entry = load_model("mnist-mlp")
    return model


@pytest.fixture(scope="session")
def mnist_test_split():
    from smug.bench.datasets import mnist_split as load_split

    _, _, x_test, y_test = load_split()
    return x_test, y_test


@pytest.fixture(scope="session")
def lite0():
    from smug.models.zoo import load_model

    model, entry = load_model("efficientnet-lite0")
    return model, entry


@pytest.fixture(scope="session")
def cat(lite0):
    model, entry = lite0
    x, _ = entry.preprocess.load(shared_image("n02123597_Siamese_cat.JPEG"))
    return x


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def tiny_conv_net(seed: int = 0, channels: int = 2, size: int = 9, out_channels: int = 3, classes: int = 4):
    """Pad -> Conv(3x3, stride 2, own pads) -> BatchNorm -> Relu -> Flatten -> Gemm, random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(seed)
    W = r.normal(size=(out_channels, channels, 3, 3)).astype(np.float32)
    b = r.normal(size=out_channels).astype(np.float32)
    scale = r.uniform(-1.5, 1.5, out_channels).astype(np.float32)  # negative scales flip signs
    shift, mean = r.normal(size=(2, out_channels)).astype(np.float32)
    var = r.uniform(0.5, 2, out_channels).astype(np.float32)
    ph, pw = size + 1, size + 1  # after Pad(top 1, right 1)
    oh = (ph + 1 + 0 - 3) // 2 + 1  # conv pads: top 1, left 0, bottom 0, right 1
    ow = (pw + 0 + 1 - 3) // 2 + 1
    G = r.normal(size=(classes, out_channels * oh * ow)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (W, "W"), (b, "b"), (scale, "s"), (shift, "t"), (mean, "mu"), (var, "var"), (G, "G"),
        (np.zeros(classes, np.float32), "gb"), (np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64), "pads")]]
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["xp"], mode="constant"),
        helper.make_node("Conv", ["xp", "W", "b"], ["z"], strides=[2, 2], pads=[1, 0, 0, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["z", "s", "t", "mu", "var"], ["zb"], epsilon=1e-3),
        helper.make_node("Relu", ["zb"], ["a"]),
        helper.make_node("Flatten", ["a"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "G", "gb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, dict(W=W, b=b, scale=scale, shift=shift, mean=mean, var=var, eps=1e-3)


@pytest.fixture
def tiny_conv():
    from smug.models.runtime import OnnxModel

    proto, params = tiny_conv_net()
    return OnnxModel.from_proto(proto, "tiny"), params


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="tests/server/test_fuzz.py: 10,000 fuzzed requests instead of 32")


@pytest.fixture(scope="session")
def torchvision_onnx(tmp_path_factory):
    """``get(arch, exporter, batch, size)``: a torchvision classifier (random weights, nothing
    downloaded) exported to ONNX by :func:`smug.bench.compat.export`, once per session."""
    pytest.importorskip("torchvision")
    from smug.bench.compat import export

    folder = tmp_path_factory.mktemp("torchvision")
    made: dict[tuple, Path] = {}

    def get(arch: str, exporter: str = "ts17", batch: str = "1", size: int = 64) -> Path:
        key = (arch, exporter, batch, size)
        if key not in made:
            made[key] = export(arch, exporter, batch, size, folder / f"{arch}-{exporter}-{batch}-{size}.onnx")
        return made[key]

    return get
