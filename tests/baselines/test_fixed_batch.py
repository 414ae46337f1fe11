"""Batch-1 models (issue 26): a graph exported with a fixed batch of 1 (torch.onnx.export without
dynamic_axes) gets the same map from every baseline as the same graph with a dynamic batch --
the forward-only methods batch on onnxruntime, the gradient ones in torch, and each runs one
input at a time on the fixed graph."""

from __future__ import annotations

import numpy as np
import pytest

from smug.baselines.attribution import attribute
from smug.models.runtime import OnnxModel
from smug.models.zoo import load_model

pytest.importorskip("torch")

# (method, parameters small enough for a 28x28 digit)
METHODS = [
    ("occlusion", {"patch": 7, "stride": 7}),
    ("rise", {"n_masks": 24, "cell": 7}),
    ("sfl", {"n_mutants": 24}),
    ("extremal_perturbation", {"iterations": 6}),
    ("sis", {"window": 7}),
    ("gradient", {}),
    ("integrated_gradients", {"steps": 8}),
    ("gradcam", {}),
]


@pytest.fixture(scope="module")
def pair():
    """mnist-cnn as shipped (dynamic batch) and the same graph with its batch fixed to 1."""
    dynamic, _ = load_model("mnist-cnn")
    proto = type(dynamic.proto)()
    proto.CopyFrom(dynamic.proto)
    for value in (proto.graph.input[0], proto.graph.output[0]):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 1
    fixed = OnnxModel.from_proto(proto, "mnist-cnn-batch1")
    assert dynamic.fixed_batch is None and fixed.fixed_batch == 1
    return dynamic, fixed


@pytest.mark.parametrize("method,params", METHODS, ids=[m for m, _ in METHODS])
def test_fixed_batch_one_model_gives_the_dynamic_models_map(pair, method, params):
    dynamic, fixed = pair
    x = np.asarray(load_model("mnist-cnn")[1].preprocess.load(
        load_model("mnist-cnn")[1].demo_input)[0], dtype=np.float32)
    want = attribute(dynamic, x, None, method, **params)
    got = attribute(fixed, x, None, method, **params)
    assert got.target == want.target
    assert got.map.shape == want.map.shape
    np.testing.assert_allclose(got.map, want.map, rtol=1e-3, atol=1e-5 * max(1.0, float(np.abs(want.map).max())))


def test_fixed_batch_one_model_runs_a_batch_of_logits(pair):
    dynamic, fixed = pair
    xs = np.random.default_rng(0).normal(size=(5, *fixed.input_shape)).astype(np.float32)
    np.testing.assert_allclose(fixed.logits(xs, batch_size=8), dynamic.logits(xs), rtol=1e-5, atol=1e-5)
    names = [fixed.proto.graph.node[0].output[0]]
    np.testing.assert_allclose(fixed.tensors(xs, names)[names[0]], dynamic.tensors(xs, names)[names[0]], atol=1e-5)
