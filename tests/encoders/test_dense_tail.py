"""encoders/dense_tail.py: the numpy tail against torch autograd on the same networks (the plain
reference), and where it must not be used."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from smug.encoders import dense_tail as dt
from smug.encoders.first_layer import find_first_layer
from smug.encoders.ig import integrated_gradients
from smug.encoders.smug import encode_smug, ig_probability, select_top_k, target_probability
from smug.models.zoo import load_model


def _digit(model) -> np.ndarray:
    return np.random.default_rng(3).uniform(size=model.input_shape).astype(np.float32)


@pytest.mark.parametrize("name", ["mnist-mlp", "mnist-cnn"])
def test_the_numpy_tail_gives_torchs_probability_gradient_and_ig(name):
    from smug.models.torch_backend import device, torch_module

    torch = torch_module()
    model = load_model(name)[0]
    layer = find_first_layer(model)
    tail = dt.dense_tail(model, layer)
    assert tail is not None and tail.max_abs_logit_error <= dt.TOLERANCE
    x = _digit(model)
    act = model.tensors(x[None], [layer.activation_tensor])[layer.activation_tensor][0]
    target = int(np.argmax(model.logits(x[None])[0]))
    prob = target_probability(model, layer, x, target)
    points = np.stack([a * act for a in (0.2, 0.6, 1.0)]).astype(np.float32)
    z = torch.as_tensor(points, device=device()).requires_grad_(True)
    p = prob(z)
    (grad,) = torch.autograd.grad(p.sum(), z)
    flat = points.reshape(len(points), -1)
    np.testing.assert_allclose(tail.probability(flat, target), p.detach().double().cpu().numpy(), atol=1e-5)
    # a * dF/da, IG's integrand: where a MaxPool window ties (all zero after the first ReLU) torch and the
    # lowering pass the gradient to different members, each a valid choice, and a = 0 there
    ours = tail.gradient(flat, target) * flat
    want = grad.double().cpu().numpy().reshape(len(points), -1) * flat
    assert np.abs(ours - want).max() <= 1e-4 * max(1.0, np.abs(want).max())

    numpy_prob, report = ig_probability(model, layer, x, act, target)
    assert report[f"from {layer.activation_tensor}"]["path"] == dt.PATH
    ig_numpy = integrated_gradients(numpy_prob, act, steps=32)
    ig_torch = integrated_gradients(prob, act, steps=32)
    scale = np.abs(ig_torch.attribution).max()
    assert np.abs(ig_numpy.attribution - ig_torch.attribution).max() <= 1e-4 * scale
    assert abs(ig_numpy.f_input - ig_torch.f_input) < 1e-5 and abs(ig_numpy.f_baseline - ig_torch.f_baseline) < 1e-5
    k = min(50, int((ig_torch.attribution > 0).sum()))  # mnist-mlp's first layer has 32 units
    assert len(set(select_top_k(ig_numpy.attribution, k)) & set(select_top_k(ig_torch.attribution, k))) >= 0.95 * k


def test_the_gradient_is_the_finite_difference_of_the_probability():
    model = load_model("mnist-mlp")[0]
    layer = find_first_layer(model)
    tail = dt.dense_tail(model, layer)
    act = model.tensors(_digit(model)[None], [layer.activation_tensor])[layer.activation_tensor].reshape(1, -1)
    act = act.astype(np.float64) * 0.5
    g = tail.gradient(act, 3)[0]
    h = 1e-6
    for i in np.argsort(-np.abs(g))[:5]:
        e = np.zeros_like(act)
        e[0, i] = h
        fd = (tail.probability(act + e, 3)[0] - tail.probability(act - e, 3)[0]) / (2 * h)
        assert abs(fd - g[i]) <= 1e-5 * max(1.0, abs(g[i]))


def test_no_numpy_tail_without_a_relu_first_layer_or_beyond_its_size(monkeypatch):
    import dataclasses

    model = load_model("mnist-mlp")[0]
    layer = find_first_layer(model)
    assert dt._build(model, dataclasses.replace(layer, activation="Clip")) is None
    monkeypatch.setattr(dt, "MAX_MULTIPLY_ADDS", 10)
    assert dt._build(model, layer) is None


def test_a_tail_that_misses_the_runtime_on_the_input_falls_back_to_torch(monkeypatch):
    model = load_model("mnist-mlp")[0]
    layer = find_first_layer(model)
    x = _digit(model)
    act = model.tensors(x[None], [layer.activation_tensor])[layer.activation_tensor][0]
    monkeypatch.setattr(dt.DenseTail, "logit_error", lambda self, acts, logits: 1.0)
    prob, report = ig_probability(model, layer, x, act, 0)
    assert report == {} and callable(prob)


def test_a_small_relu_network_is_explained_without_importing_torch():
    code = ("import sys; import numpy as np; from smug.models.zoo import load_model; "
            "from smug.encoders.smug import encode_smug; from smug.encoders.config import SmugConfig; "
            "m = load_model('mnist-mlp')[0]; x = np.random.default_rng(0).uniform(size=m.input_shape).astype('float32'); "
            "e = encode_smug(m, x, SmugConfig(top_k=5)); "
            "assert len(e.neurons) == 5 and e.gradients, e.gradients; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_encode_smug_on_the_numpy_tail_keeps_the_same_neurons_as_on_torch(monkeypatch):
    from smug.encoders.config import SmugConfig

    model = load_model("mnist-cnn")[0]
    x = _digit(model)
    numpy_enc = encode_smug(model, x, SmugConfig(top_k=100))
    monkeypatch.setattr(dt.DenseTail, "logit_error", lambda self, acts, logits: 1.0)  # forces the torch tail
    torch_enc = encode_smug(model, x, SmugConfig(top_k=100))
    assert numpy_enc.gradients and not torch_enc.gradients
    assert len(set(numpy_enc.neurons.tolist()) & set(torch_enc.neurons.tolist())) >= 97
