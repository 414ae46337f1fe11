"""Torch modules directly (issue 26): ``smug.explain(x, model=module, input_shape=...)`` exports the
module once (cached by its state dict) for the encoders and the certificate, differentiates the
module's own twin (no ONNX round trip), answers as the ONNX path does, and leaves the module as it was."""

from __future__ import annotations

import numpy as np
import pytest

from smug.models.errors import ModelError

torch = pytest.importorskip("torch")
nn = torch.nn


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    net[1].running_mean.uniform_(-0.3, 0.3)
    net[1].running_var.uniform_(0.5, 2.0)
    return net.train()  # a user's module may be in training mode: smug must not change that


def _state(net):
    """Everything smug must leave as it was: modes, hooks, requires_grad flags and weights."""
    return ([m.training for m in net.modules()],
            [len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in net.modules()],
            [p.requires_grad for p in net.parameters()], {k: v.clone() for k, v in net.state_dict().items()})


def _same_state(a, b) -> bool:
    return a[:3] == b[:3] and a[3].keys() == b[3].keys() and all(torch.equal(a[3][k], b[3][k]) for k in a[3])


def _zoo_module(name: str):
    """The zoo model ``name`` as the torch module it was trained as, with the zoo file's weights."""
    import onnx
    from onnx import numpy_helper

    from smug.models.zoo import ZOO

    if name == "mnist-mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    else:  # training/train_mnist_cnn.py
        net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(4, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5 * 5, 10))
    weights = {i.name: torch.as_tensor(numpy_helper.to_array(i).copy())
               for i in onnx.load(str(ZOO[name].onnx_path())).graph.initializer}
    net.load_state_dict(weights, strict=False)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())
    return net


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMUG_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("zoo", ["mnist-mlp", "mnist-cnn"])
def test_zoo_model_as_a_module_gives_the_zoo_answer_through_its_own_gradients(zoo, cache):
    import smug
    from smug.models.module_direct import PATH
    from smug.pipeline import ExplainRequest
    from smug.pipeline.inputs import load_image

    net = _zoo_module(zoo)
    net.train()
    net[-1].weight.requires_grad_(False)  # the user's own flags stay as they are
    before = _state(net)
    x = load_image(ExplainRequest.build(None, zoo)).x  # the zoo's demo digit, model space
    kw = dict(top_k=20, window=4, timeout=20)
    ours = smug.explain(x, model=net, input_shape=(1, 28, 28), **kw)
    theirs = smug.explain(x, model=zoo, **kw)
    assert _same_state(before, _state(net))
    assert ours.status == theirs.status == "optimal" and ours.certificate["valid"] is True
    assert (ours.objective, ours.target) == (theirs.objective, theirs.target)
    np.testing.assert_array_equal(ours.mask, theirs.mask)
    (path,) = ours.encoding["gradients"].values()  # IG's tail from the first layer's activation
    assert path["path"] == PATH and path["max_abs_logit_error"] < 1e-4
    assert next(iter(theirs.encoding["gradients"].values()))["path"] != PATH
    np.testing.assert_allclose(ours.saliency, theirs.saliency, rtol=1e-3, atol=1e-6 * np.abs(theirs.saliency).max())


def test_module_baselines_run_on_the_module_and_leave_it_as_it_was(cache):
    """Gradient and Guided Backprop on the module give the ONNX path's maps, Grad-CAM reads the
    module's own last convolution (before its BatchNorm, as captum's LayerGradCam on it would; the
    export folds that BatchNorm into the Conv node); no hook, mode or flag of the module changes."""
    import smug
    from smug.models.module_direct import PATH

    net = _net()
    before = _state(net)
    x = np.random.default_rng(0).uniform(0, 1, size=(1, 12, 12)).astype(np.float32)
    reference = cache / "by-hand.onnx"
    torch.onnx.export(_net().eval(), torch.zeros(1, 1, 12, 12), str(reference), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    for method in ("gradient", "guided_backprop", "gradcam"):
        ours = smug.explain(x, model=net, input_shape=(1, 12, 12), method=method)
        theirs = smug.explain(x, model=str(reference), method=method)
        assert _same_state(before, _state(net)), method
        assert {g["path"] for g in ours.encoding["gradients"].values()} == {PATH}, method
        assert np.abs(ours.saliency).max() > 0, method
        if method == "gradcam":
            from captum.attr import LayerGradCam

            twin = _net().eval()
            ref = LayerGradCam(twin, twin[0]).attribute(torch.as_tensor(x)[None], target=ours.target,
                                                        relu_attributions=True)[0, 0].detach().numpy()
            assert ours.encoding["params"]["layer"] == "0" and ref.shape == ours.saliency.shape
            np.testing.assert_allclose(ours.saliency, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
            continue
        np.testing.assert_allclose(ours.saliency, theirs.saliency, rtol=1e-4, atol=1e-6, err_msg=method)


def test_export_is_cached_by_the_state_dict(cache):
    from smug.models.module_export import module_onnx, twin_of
    from smug.models.runtime import OnnxModel

    net = _net()
    path = module_onnx(net, (1, 12, 12))
    x = np.random.default_rng(1).uniform(0, 1, size=(3, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():  # the file computes the module's eval-mode logits; so does the twin
        want = _net().eval()(torch.as_tensor(x)).numpy()
        np.testing.assert_allclose(twin_of(path)(torch.as_tensor(x)).cpu().numpy(), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(OnnxModel.load(path).logits(x), want, rtol=1e-5, atol=1e-5)
    stamp = path.stat().st_mtime_ns
    assert module_onnx(net, (1, 12, 12)) == path and path.stat().st_mtime_ns == stamp  # cached, not re-exported
    net[0].weight.data.mul_(2.0)
    assert module_onnx(net, (1, 12, 12)) != path  # other weights: another file


def test_module_without_an_input_shape_is_one_clear_error():
    import smug

    with pytest.raises(ModelError, match="needs input_shape"):
        smug.explain(np.zeros((1, 12, 12), np.float32), model=_net())
