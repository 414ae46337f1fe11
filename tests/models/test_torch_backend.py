"""The gradient path (issue 26): every torch copy is checked against onnxruntime, the graph is
normalised before onnx2torch, and smug's own ONNX evaluator takes over where onnx2torch fails."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from smug.models.errors import ModelError
from smug.models.runtime import OnnxModel

torch = pytest.importorskip("torch")


def _torch_gradient(net, x: np.ndarray, target: int) -> np.ndarray:
    xt = torch.as_tensor(x, dtype=torch.float32)[None].requires_grad_(True)
    (g,) = torch.autograd.grad(net(xt)[0, target], xt)
    return g[0].double().numpy()


def _check_against_torchvision(path, arch: str, expected_path: str, size: int = 64):
    from smug.baselines.gradients import fast_torch
    from smug.bench.compat import network
    from smug.models.torch_backend import conversion_of

    model = OnnxModel.load(path)
    x = np.random.default_rng(0).normal(size=model.input_shape).astype(np.float32)
    module = fast_torch(model)
    record = conversion_of(module)
    assert record["path"] == expected_path
    report = model.gradient_paths(x)["whole model"]
    assert report["path"] == expected_path and report["max_abs_logit_error"] < 1e-4
    net = network(arch, size)
    with torch.no_grad():
        reference = net(torch.as_tensor(x)[None])[0].double().numpy()
    target = int(reference.argmax())
    ours, theirs = _torch_gradient(module, x, target), _torch_gradient(net, x, target)
    assert np.abs(ours - theirs).max() <= 1e-4 * max(1e-6, np.abs(theirs).max()) + 1e-7
    return model, module


@pytest.mark.parametrize("exporter", ["ts17", "ts"])
def test_resnet18_torchscript_exports_take_onnx2torch_after_normalisation(torchvision_onnx, exporter):
    """The raw exports break onnx2torch (opset 17: a KeyError on an initializer; the default opset:
    no Identity-19 converter); after onnxruntime's basic normalisation it converts, and the input
    gradient equals the torchvision module's own."""
    from smug.models.torch_backend import onnx2torch_module

    path = torchvision_onnx("resnet18", exporter)
    with pytest.raises((KeyError, NotImplementedError)):
        onnx2torch_module(onnx.load(str(path)))
    _check_against_torchvision(path, "resnet18", "onnx2torch")


def test_dynamo_export_takes_the_graph_evaluator_and_batches_in_chunks(torchvision_onnx):
    """mobilenet_v3_small from the dynamo exporter (opset 18+ ReduceMean, Reshape allowzero=1):
    onnx2torch cannot read it, smug's evaluator of the graph gives the torchvision gradient, and a
    fixed-batch-1 graph still takes batches (run one input at a time)."""
    model, module = _check_against_torchvision(torchvision_onnx("mobilenet_v3_small", "dynamo"),
                                               "mobilenet_v3_small", "onnx graph evaluator")
    xs = np.random.default_rng(1).normal(size=(3, *model.input_shape)).astype(np.float32)
    with torch.no_grad():
        together = module(torch.as_tensor(xs)).numpy()
    np.testing.assert_allclose(together, model.logits(xs), rtol=1e-4, atol=1e-5)


def test_graph_evaluator_refuses_unknown_operators_by_name(tiny_conv):
    from smug.models.onnx_torch import GraphModule, UnsupportedOp

    proto = onnx.load_from_string(tiny_conv[0].proto.SerializeToString())
    proto.graph.node[3].op_type = "Celu"  # the Relu: an operator the evaluator does not have
    with pytest.raises(UnsupportedOp, match="Celu"):
        GraphModule(proto)


def test_no_agreeing_conversion_is_one_error_naming_each_path(tiny_conv, monkeypatch):
    """A conversion whose logits differ from onnxruntime's is never used."""
    from smug.models import torch_backend

    real = torch_backend.graph_module

    def off_by_one(proto):
        module = real(proto)
        module.forward = lambda *a: real(proto)(*a) + 1.0
        return module

    monkeypatch.setattr(torch_backend, "onnx2torch_module", lambda proto: off_by_one(proto))
    monkeypatch.setattr(torch_backend, "graph_module", off_by_one)
    with pytest.raises(ModelError, match="onnx2torch: logits differ.*onnx graph evaluator: logits differ"):
        torch_backend.convert(tiny_conv[0].proto)
