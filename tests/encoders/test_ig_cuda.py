"""IG on a CUDA device against the same IG on the CPU (skipped without CUDA; bench/gpu_check.sh runs it)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (bench/gpu_check.sh)")


def ig_on(device_name, proto, x, monkeypatch, steps=32):
    from smug.encoders.first_layer import find_first_layer
    from smug.encoders.ig import integrated_gradients
    from smug.encoders.smug import target_probability
    from smug.models.runtime import OnnxModel

    monkeypatch.setenv("SMUG_DEVICE", device_name)
    model = OnnxModel.from_proto(copy.deepcopy(proto), "m")  # a fresh wrapper: its torch copy on this device
    layer = find_first_layer(model)
    x, target = model.checked_input(x)
    act = model.tensors(x[None], [layer.activation_tensor])[layer.activation_tensor][0]
    prob = target_probability(model, layer, x, target)
    assert next(model.torch_tail(layer.activation_tensor).parameters()).device.type == device_name
    return integrated_gradients(prob, act, steps=steps)


def test_ig_on_cuda_equals_ig_on_cpu(tiny_conv, rng, monkeypatch, tmp_path):
    monkeypatch.setenv("SMUG_CACHE", str(tmp_path))
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    cpu = ig_on("cpu", model.proto, x, monkeypatch)
    gpu = ig_on("cuda", model.proto, x, monkeypatch)
    np.testing.assert_allclose(gpu.attribution, cpu.attribution, rtol=1e-4, atol=1e-7)
    assert abs(gpu.completeness_error - cpu.completeness_error) < 1e-4


@pytest.mark.slow
def test_lite0_ig_ranking_on_cuda_matches_the_cpu(lite0, cat, monkeypatch):
    from smug.encoders.smug import select_top_k

    model, _ = lite0
    cpu = ig_on("cpu", model.proto, cat, monkeypatch)
    gpu = ig_on("cuda", model.proto, cat, monkeypatch)
    a, b = set(select_top_k(cpu.attribution, 3000).tolist()), set(select_top_k(gpu.attribution, 3000).tolist())
    assert len(a & b) >= 0.99 * len(a)


@pytest.mark.slow
def test_smug_with_ig_on_cuda_is_optimal_and_certified(monkeypatch):
    from smug.pipeline import ExplainRequest, run

    monkeypatch.setenv("SMUG_DEVICE", "cuda")
    e = run(ExplainRequest.build(None, "efficientnet-lite0", timeout=60))
    assert e.status == "optimal" and e.certificate["valid"] is True
