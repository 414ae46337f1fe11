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

    def off_by_one(proto, conv_units=False):
        module = real(proto)
        module.forward = lambda *a: real(proto)(*a) + 1.0
        return module

    monkeypatch.setattr(torch_backend, "onnx2torch_module", lambda proto: off_by_one(proto))
    monkeypatch.setattr(torch_backend, "graph_module", off_by_one)
    with pytest.raises(ModelError, match="onnx2torch: logits differ.*onnx graph evaluator: logits differ"):
        torch_backend.convert(tiny_conv[0].proto)


def test_convolution_units_compute_the_evaluators_own_function(tiny_conv):
    """The IG tails' evaluator (issue 29): constant convolutions as ``Conv2d`` modules (uneven pads
    through a ``ZeroPad2d``) give the logits and input gradient of the functional evaluator, and
    every intermediate tensor is released after its last reader."""
    from smug.models.onnx_torch import GraphModule

    proto = tiny_conv[0].proto  # its Conv has uneven pads (top 1, left 0, bottom 0, right 1)
    plain, units = GraphModule(proto), GraphModule(proto, conv_units=True)
    convs = [m for m in units.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 and not any(isinstance(m, torch.nn.Conv2d) for m in plain.modules())
    x = np.random.default_rng(1).normal(size=(3, 2, 9, 9)).astype(np.float32)
    for target in range(4):
        assert np.allclose(_torch_gradient(units, x[0], target), _torch_gradient(plain, x[0], target), atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(units(torch.as_tensor(x)), plain(torch.as_tensor(x)), atol=1e-5)
    readers = {}
    for i, (_, ins, _, _) in enumerate(units.nodes):
        for name in ins:
            readers[name] = i
    released = {name: i for i, names in enumerate(units.release) for name in names}
    intermediates = {name for _, _, outs, _ in units.nodes for name in outs} - {units.output}
    assert released == {name: readers[name] for name in intermediates | set(units.inputs) if name in readers}


def test_an_ig_tail_loads_back_without_onnx2torch(tmp_path):
    """The IG tail is smug's evaluator (checked against onnxruntime like every copy), cached on
    disk; a fresh process loads it with torch alone (no onnx2torch, no torchvision: ~3 s of a cold
    start) and gets the same gradient."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, torch\n"
            "from smug.models.zoo import load_model\n"
            "from smug.encoders.first_layer import find_first_layer\n"
            "m = load_model('mnist-cnn')[0]\n"
            "start = find_first_layer(m).activation_tensor\n"
            "tail = m.torch_tail(start)\n"
            "x = np.random.default_rng(0).uniform(size=(1, *m.input_shape)).astype(np.float32)\n"
            "a = torch.as_tensor(m.tensors(x, [start])[start]).requires_grad_(True)\n"
            "(g,) = torch.autograd.grad(tail(a, torch.as_tensor(x))[0, 3], a)\n"
            "print(tail.smug_conversion['path'].replace(' ', '_'), 'onnx2torch' in sys.modules, 'torchvision' in sys.modules,"
            " float(g.abs().sum()))\n")
    env = {**__import__("os").environ, "SMUG_CACHE": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]  # the first builds and caches the tail, the second loads it
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    (path1, _, _, g1), (path2, o2t, tv, g2) = (r.stdout.split()[-4:] for r in runs)
    assert path1 == path2 == "onnx_graph_evaluator"
    assert (o2t, tv) == ("False", "False") and float(g1) == float(g2) > 0
