"""Baselines on a CUDA device against the CPU (skipped without CUDA; bench/gpu_check.sh runs it)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (bench/gpu_check.sh)")


@pytest.mark.parametrize("method,params", [
    ("gradient", {}), ("integrated_gradients", dict(steps=16)),
    ("extremal_perturbation", dict(iterations=10)), ("sis", dict(window=2, selection="gradient", per_step=2)),
])
def test_baseline_on_cuda_equals_the_cpu(tiny_conv, rng, monkeypatch, tmp_path, method, params):
    from smug.baselines.attribution import attribute
    from smug.models.runtime import OnnxModel

    monkeypatch.setenv("SMUG_CACHE", str(tmp_path))
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    maps = {}
    for dev in ("cpu", "cuda"):
        monkeypatch.setenv("SMUG_DEVICE", dev)
        fresh = OnnxModel.from_proto(copy.deepcopy(model.proto), "tiny")
        maps[dev] = attribute(fresh, x, method=method, **params)
    if method == "sis":  # both sufficient; the order may differ by float ties, so compare the sets' sufficiency
        for a in maps.values():
            assert a.params["sets"] and not a.params["stopped_at_deadline"]
    else:
        np.testing.assert_allclose(maps["cuda"].map, maps["cpu"].map, rtol=1e-3, atol=1e-5)
