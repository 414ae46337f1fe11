"""OnnxModel.derived: the per-wrapper store of artefacts computed from the graph."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnx
import onnx.utils
import pytest
from onnx import TensorProto, helper

from smug.models.runtime import OnnxModel


def relu_model() -> OnnxModel:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    return OnnxModel.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_derived_builds_once_per_key_and_per_wrapper():
    model, other = relu_model(), relu_model()
    calls = []

    def build():
        calls.append(1)
        return object()

    first = model.derived("thing", build)
    assert model.derived("thing", build) is first and len(calls) == 1
    assert other.derived("thing", build) is not first and len(calls) == 2  # belongs to its wrapper
    assert model.derived(("thing", 2), build) is not first and len(calls) == 3
    assert model == other  # the store takes no part in comparison


def test_derived_is_thread_safe_and_reentrant():
    model = relu_model()
    calls = []

    def build():
        calls.append(1)
        time.sleep(0.05)
        return model.derived("inner", lambda: "inner") + "/outer"  # a build may use another key

    got = []
    threads = [threading.Thread(target=lambda: got.append(model.derived("outer", build))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["inner/outer"] * 8 and len(calls) == 1


def test_a_failed_build_stores_nothing():
    model = relu_model()

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        model.derived("x", broken)
    assert model.derived("x", lambda: 7) == 7


def test_tensors_are_cached_and_leave_the_proto_unchanged():
    model = relu_model()
    before = model.proto.SerializeToString()
    x = np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(model.tensors(x, ["y"])["y"], np.maximum(x, 0))
    assert model.tensors(x, ["y"]).keys() == {"y"}
    assert model.proto.SerializeToString() == before
    onnx.checker.check_model(model.proto)


def test_derived_on_disk_is_reused_by_a_new_wrapper_and_rebuilt_when_unreadable(tmp_path, monkeypatch):
    monkeypatch.setenv("SMUG_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return {"value": len(calls)}

    save = lambda value, path: path.write_text(str(value["value"]))  # noqa: E731
    load = lambda path: {"value": int(path.read_text())}  # noqa: E731
    model = relu_model()
    assert model.derived_on_disk("thing.txt", build, save, load) == {"value": 1}
    path = tmp_path / "derived" / model.sha256 / "thing.txt"
    assert path.read_text() == "1" and not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert relu_model().derived_on_disk("thing.txt", build, save, load) == {"value": 1} and len(calls) == 1
    path.write_text("half a fi")  # unreadable: rebuilt and replaced
    assert relu_model().derived_on_disk("thing.txt", build, save, load) == {"value": 2}
    assert path.read_text() == "2"


def test_torch_tail_is_cached_on_disk_and_computes_the_plain_conversion(tmp_path, monkeypatch, tiny_conv):
    """The tail from the first activation (fast copy, loaded from disk in a new wrapper) gives the
    plain onnx2torch conversion's logits and gradients; the user's proto is unchanged."""
    import copy

    from smug.encoders.first_layer import find_first_layer
    from smug.models.torch_backend import convert, torch_module

    monkeypatch.setenv("SMUG_CACHE", str(tmp_path))
    torch = torch_module()
    model = tiny_conv[0]
    proto = model.proto
    before = copy.deepcopy(proto)
    start = find_first_layer(model).activation_tensor
    model.torch_tail(start)
    assert len(list((tmp_path / "derived" / model.sha256).glob("tail-*.pt"))) == 1
    fresh = OnnxModel.from_proto(copy.deepcopy(proto), "tiny")
    tail = fresh.torch_tail(start)
    x = np.random.default_rng(3).normal(size=(2, *model.input_shape)).astype(np.float32)
    act = model.tensors(x, [start])[start]
    plain = convert(onnx.utils.Extractor(onnx.shape_inference.infer_shapes(proto)).extract_model(
        [start, model.input_name], [model.output_name]))
    a1 = torch.as_tensor(act).requires_grad_(True)
    a2 = torch.as_tensor(act).requires_grad_(True)
    out1, out2 = tail(a1, torch.as_tensor(x)), plain(a2, torch.as_tensor(x))
    np.testing.assert_allclose(out1.detach().numpy(), model.logits(x), rtol=1e-4, atol=1e-5)
    (g1,) = torch.autograd.grad(out1[:, 1].sum(), a1)
    (g2,) = torch.autograd.grad(out2[:, 1].sum(), a2)
    np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-4, atol=1e-6)
    assert proto == before
