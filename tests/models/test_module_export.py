"""Torch modules directly (issue 26): ``smug.explain(x, model=module, input_shape=...)`` exports the
module once (cached by its state dict) and answers as the ONNX path does; the module is untouched."""

from __future__ import annotations

import numpy as np
import pytest

from smug.models.errors import ModelError

torch = pytest.importorskip("torch")


def _net():
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    net[1].running_mean.uniform_(-0.3, 0.3)
    net[1].running_var.uniform_(0.5, 2.0)
    return net.train()  # a user's module may be in training mode: smug must not change that


def test_module_gives_the_onnx_paths_answer_and_stays_as_it_was(tmp_path, monkeypatch):
    import smug
    from smug.models.module_export import module_onnx

    monkeypatch.setenv("SMUG_CACHE", str(tmp_path / "cache"))
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = np.random.default_rng(0).uniform(0, 1, size=(1, 12, 12)).astype(np.float32)
    kw = dict(top_k=20, window=2, timeout=20)
    ours = smug.explain(x, model=net, input_shape=(1, 12, 12), **kw)
    assert net.training and all(m.training for m in net.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())

    reference = tmp_path / "by-hand.onnx"
    twin = _net().eval()
    torch.onnx.export(twin, torch.zeros(1, 1, 12, 12), str(reference), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    theirs = smug.explain(x, model=str(reference), **kw)
    assert (ours.status, ours.objective, ours.target) == (theirs.status, theirs.objective, theirs.target)
    np.testing.assert_array_equal(ours.mask, theirs.mask)
    with torch.no_grad():  # the exported file computes the module's eval-mode logits
        want = twin(torch.as_tensor(x)[None]).numpy()
    from smug.models.runtime import OnnxModel

    path = module_onnx(net, (1, 12, 12))
    np.testing.assert_allclose(OnnxModel.load(path).logits(x[None]), want, rtol=1e-5, atol=1e-5)
    stamp = path.stat().st_mtime_ns
    assert module_onnx(net, (1, 12, 12)) == path and path.stat().st_mtime_ns == stamp  # cached, not re-exported
    net[0].weight.data.mul_(2.0)
    assert module_onnx(net, (1, 12, 12)) != path  # other weights: another file


def test_module_without_an_input_shape_is_one_clear_error():
    import smug

    with pytest.raises(ModelError, match="needs input_shape"):
        smug.explain(np.zeros((1, 12, 12), np.float32), model=_net())
