"""Re-initialised copies (Gaussian, ring, uniform) and the parameter-randomisation check."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from smug.metrics.sanity import parameter_randomisation, randomized, spearman, weight_layers


def _weights(model):
    inits = {i.name: numpy_helper.to_array(i) for i in model.proto.graph.initializer}
    return [(inits[w], inits[b] if b else None) for w, b in weight_layers(model.proto)]


@pytest.mark.parametrize("scheme", ["gaussian", "ring", "uniform"])
def test_randomized_copy_changes_only_the_top_layers(tiny_conv, scheme):
    model, _ = tiny_conv
    before = onnx.ModelProto()
    before.CopyFrom(model.proto)
    orig = _weights(model)
    m1 = randomized(model, scheme, top=1, seed=3)
    new = _weights(m1)
    assert len(orig) == 2  # Conv, Gemm
    np.testing.assert_array_equal(new[0][0], orig[0][0])  # the Conv is kept
    assert not np.allclose(new[1][0], orig[1][0])  # the Gemm is redrawn
    assert np.all(new[1][1] == 0)  # and its bias zeroed
    assert model.proto == before  # the user's model is untouched
    assert 0.5 < new[1][0].std() / orig[1][0].std() < 2.0  # same scale
    if scheme == "ring":
        norms = np.linalg.norm(new[1][0], axis=1)  # Gemm transB=1: rows are neurons
        expected = orig[1][0].std() * np.sqrt(new[1][0].shape[1])
        assert np.all((norms >= 0.9 * expected - 1e-4) & (norms <= 1.1 * expected + 1e-4))
    if scheme == "uniform":
        a = np.sqrt(3) * orig[1][0].std()
        assert np.abs(new[1][0]).max() <= a + 1e-5
    all_new = _weights(randomized(model, scheme, seed=3))
    assert not np.allclose(all_new[0][0], orig[0][0])
    with pytest.raises(ValueError, match="top"):
        randomized(model, scheme, top=3)


def test_parameter_randomisation_correlations(tiny_conv, rng):
    pytest.importorskip("torch")
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    t = int(model.logits(x[None])[0].argmax())
    out = parameter_randomisation(model, x, t, "gradient", [0, 1, 2])
    assert out[0] == pytest.approx(1.0)  # nothing randomised: the same map
    assert all(-1 <= v <= 1 for v in out.values())
    assert spearman(np.arange(5), np.arange(5) ** 3) == pytest.approx(1.0)
    assert spearman(np.arange(5), -np.arange(5)) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="scheme"):
        randomized(model, "laplace")
