"""A user's own ONNX classifier from the command line: image with a preprocessing, .npy arrays
with or without the batch dimension, through explain, whole-network, a baseline and dump."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


def _small_cnn(path, seed: int = 0) -> None:
    """Conv 3x3 (3 -> 4 channels, stride 2) -> Relu -> Flatten -> Gemm (10 classes) on 3x16x16."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(seed)
    W = r.normal(size=(4, 3, 3, 3)).astype(np.float32)
    G = r.normal(size=(10, 4 * 8 * 8)).astype(np.float32) * 0.3
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.zeros(4, np.float32), "b"),
             numpy_helper.from_array(G, "G"), numpy_helper.from_array(np.zeros(10, np.float32), "g")]
    nodes = [helper.make_node("Conv", ["x", "W", "b"], ["z"], strides=[2, 2], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["z"], ["a"]), helper.make_node("Flatten", ["a"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "G", "g"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "user-cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "smug", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("user")
    _small_cnn(d / "cnn.onnx")
    y, x = np.mgrid[0:20, 0:24]
    img = np.stack([128 + 100 * np.sin(x / 3), 128 + 100 * np.cos(y / 4), 60 + 4 * x + 2 * y], axis=2)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / "photo.png")
    return d


PREP = '{"crop": 16, "resize": 16, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}'


def test_image_on_a_user_model_needs_and_takes_a_preprocessing(user):
    r = _cli("explain", "photo.png", "--model", "cnn.onnx", "--out", "o0", cwd=user)
    assert r.returncode == 2 and "--preprocess" in r.stderr and not (user / "o0").exists()
    r = _cli("explain", "photo.png", "--model", "cnn.onnx", "--preprocess", PREP, "--top-k", "30", "--window", "2",
             "--out", "o1", cwd=user)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    saved = json.loads((user / "o1" / "result.json").read_text())
    assert res["status"] == saved["status"] == "optimal" and saved["certificate"]["valid"]
    assert saved["request"]["preprocess"]["crop"] == 16 and saved["n_vars"] == 64


def test_npy_with_and_without_batch_and_every_method(user):
    import onnxruntime as ort

    x = np.random.default_rng(1).normal(size=(1, 3, 16, 16)).astype(np.float32)
    np.save(user / "batch.npy", x)
    np.save(user / "single.npy", x[0])
    r = _cli("explain", "batch.npy", "--model", "cnn.onnx", "--method", "whole-network", "--window", "4",
             "--out", "wn", cwd=user)
    assert r.returncode == 0, r.stderr
    res = json.loads((user / "wn" / "result.json").read_text())
    assert res["status"] == "optimal" and res["keeps_class"] is True
    mask = np.zeros((4, 4), bool)
    for i, j in res["mask_blocks"]:
        mask[i, j] = True
    pixels = np.kron(mask, np.ones((4, 4), bool))  # 4x4 blocks on the 16x16 input
    session = ort.InferenceSession(str(user / "cnn.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": np.where(pixels, x, 0.0).astype(np.float32)})[0][0]
    assert int(logits.argmax()) == res["target"]  # the forward pass keeps the class
    for args in (["--method", "gradient"], ["--top-k", "20", "--window", "2"]):
        r = _cli("explain", "single.npy", "--model", "cnn.onnx", *args, "--out", "o", cwd=user)
        assert r.returncode == 0, r.stderr
    r = _cli("dump", "batch.npy", "--model", "cnn.onnx", "--top-k", "20", "--out", "c.smt2", cwd=user)
    assert r.returncode == 0 and "(declare-const" in (user / "c.smt2").read_text()
    np.save(user / "wrong.npy", np.zeros((2, 3, 16, 16), np.float32))
    r = _cli("explain", "wrong.npy", "--model", "cnn.onnx", "--out", "bad", cwd=user)
    assert r.returncode == 2 and "shape (2, 3, 16, 16)" in r.stderr and "(3, 16, 16)" in r.stderr


def test_bad_preprocessing_is_refused_before_any_work(user):
    for spec, words in (('{"resize": 16}', "needs 'crop'"), ('{"crop": 16, "mean": 0.5, "scale": 3}', "not both"),
                        ("{crop", "not valid JSON"), ("nofile.json", "preprocessing file not found"),
                        ('{"crop": 16, "std": 0}', "non-zero"), ('{"crop": 16, "shear": 1}', "unknown")):
        r = _cli("explain", "photo.png", "--model", "cnn.onnx", "--preprocess", spec, "--out", "x", cwd=user)
        assert r.returncode == 2 and words in r.stderr, (spec, r.stderr)
