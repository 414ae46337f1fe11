"""Input alignment (paper 004 Eq. 1) and KIS (Eq. 20), against plain computations."""

from __future__ import annotations

import numpy as np
import pytest

from smug.metrics.alignment import KIS, alignment, features, last_linear, normalise_to_input


def test_alignment_is_the_cosine(rng):
    x = rng.normal(size=(2, 5, 5))
    assert alignment(x, x) == pytest.approx(1.0)
    assert alignment(-3 * x, x) == pytest.approx(-1.0)
    r = rng.normal(size=x.shape)
    assert alignment(r, x) == pytest.approx(float((r * x).sum() / np.linalg.norm(r) / np.linalg.norm(x)))
    hw = rng.normal(size=(5, 5))  # an (H, W) map is broadcast over channels
    assert alignment(hw, x) == pytest.approx(alignment(np.stack([hw, hw]), x))
    assert alignment(np.zeros_like(x), x) == 0.0
    with pytest.raises(ValueError, match="fits neither"):
        alignment(np.ones(3), x)


def test_normalise_to_input_range(rng):
    x = rng.normal(size=(3, 4, 4))
    r = rng.normal(size=(3, 4, 4)) * 7 + 2
    t = normalise_to_input(r, x)
    assert t.min() == pytest.approx(x.min()) and t.max() == pytest.approx(x.max())
    np.testing.assert_allclose(normalise_to_input(x, x), x)
    assert np.all(normalise_to_input(np.ones_like(x), x) == x.min())


def test_kis_is_one_for_the_input_itself(tiny_conv, rng):
    model, params = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    assert KIS()(model, x, x) == pytest.approx(1.0, abs=1e-6)
    assert KIS()(model, x, 2.0 * x + 1.0) == pytest.approx(1.0, abs=1e-5)  # same after min-max


def test_kis_matches_a_plain_computation(tiny_conv, rng):
    model, params = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    r = rng.normal(size=model.input_shape)
    target = int(model.logits(x[None])[0].argmax())
    layer = last_linear(model)
    assert layer.weight.shape[0] == 4  # tiny_conv: 4 classes, Gemm transB=1
    rt = (r - r.min()) * (x.max() - x.min()) / (r.max() - r.min()) + x.min()
    a = features(model, layer, x[None])[0]
    a_star = features(model, layer, rt[None].astype(np.float32))[0]
    v = layer.weight[target]
    expected = 1 - np.abs(v * a_star - v * a).sum() / np.abs(v * a).sum()
    assert KIS()(model, x, r, target) == pytest.approx(expected, rel=1e-6)
    # the features really are what the last layer reads: logits = W a (zero bias in tiny_conv)
    np.testing.assert_allclose(layer.weight @ a, model.logits(x[None])[0], rtol=1e-4, atol=1e-4)
