"""OnnxModel.derived: the per-wrapper store of artefacts computed from the graph."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnx
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
