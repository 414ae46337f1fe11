import itertools

import numpy as np
import pytest

from smug.encoders.blocks import BlockGrid
from smug.encoders.first_layer import find_first_layer
from smug.encoders.saliency import base_mask, eq4_scores, smug_saliency
from smug.encoders.smug import SmugConfig, build_problem, encode_smug
from smug.solver.certificate import certify
from smug.solver.solve import solve


def receptive_reference(layer, neuron):
    """Pixels (y, x) a conv neuron reads, by plain geometry."""
    ch, oy, ox = layer.neuron_position(neuron)
    _, H, W = layer.input_shape
    kh, kw = layer.weight.shape[2:]
    pix = set()
    for ky in range(kh):
        for kx in range(kw):
            y = oy * layer.stride[0] - layer.pads[0] + ky
            x = ox * layer.stride[1] - layer.pads[1] + kx
            if 0 <= y < H and 0 <= x < W and np.any(layer.weight[ch, :, ky, kx] != 0):
                pix.add((y, x))
    return pix


@pytest.mark.parametrize("form", ["linear", "affine"])
def test_encoding_equals_the_masked_forward_pass(tiny_conv, rng, form):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    enc = encode_smug(model, x, SmugConfig(top_k=40, window=4, form=form, baseline=0.3, ig_steps=16))
    p, layer = enc.problem, enc.layer
    assert p.n_constraints == len(enc.constrained) > 0
    for _ in range(5):
        mask = rng.integers(0, 2, p.n_vars).astype(bool)
        masked = p.masked_input(mask).reshape(model.input_shape).astype(np.float32)
        onnx_z = model.tensors(masked[None], [layer.preact_tensor])[layer.preact_tensor][0].ravel()
        bias = layer.bias[np.unravel_index(enc.constrained, layer.output_shape)[0]]
        ours = p.weights @ p.masked_input(mask) + p.bias
        np.testing.assert_allclose(ours, onnx_z[enc.constrained] - (bias if form == "linear" else 0), atol=1e-5)


def test_solution_is_the_brute_force_minimum(tiny_conv, rng):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    enc = encode_smug(model, x, SmugConfig(top_k=40, window=4, ig_steps=16))
    p = enc.problem
    sizes = [sum(m) for m in itertools.product((0, 1), repeat=p.n_vars) if certify(p, np.array(m)).valid]
    sol = solve(p, timeout=30)
    assert sol.status == "optimal" and sol.objective == min(sizes) and sol.certificate.valid


def test_constraints_only_for_neurons_with_positive_original_value(tiny_conv, rng):
    model, _ = tiny_conv
    layer = find_first_layer(model)
    x = rng.normal(size=model.input_shape)
    neurons = np.arange(layer.n_neurons)
    grid = BlockGrid(model.input_shape, 4)
    problem, kept = build_problem(layer, x, neurons, grid, gamma=0.5, form="linear")
    z = layer.preactivation(x, with_bias=False).ravel()
    assert kept.tolist() == neurons[z > 0].tolist()
    np.testing.assert_allclose(problem.weights @ problem.x, z[kept], rtol=1e-12)


def test_eq4_saliency_and_base_mask_match_plain_geometry(tiny_conv, rng):
    model, _ = tiny_conv
    layer = find_first_layer(model)
    grid = BlockGrid(model.input_shape, 4)
    neurons = rng.choice(layer.n_neurons, 12, replace=False)
    attr = rng.uniform(0.1, 1, 12)
    H, W = grid.spatial
    ref = np.zeros((H, W))
    for n, a in zip(neurons, attr):
        for (y, x) in receptive_reference(layer, n):
            ref[y, x] += a
    np.testing.assert_allclose(eq4_scores(layer, neurons, attr, (H, W)), ref)
    base = base_mask(layer, neurons, grid)
    assert np.array_equal(base, _blocks(grid, ref > 0))
    mask = rng.integers(0, 2, grid.n_vars).astype(bool)
    np.testing.assert_allclose(smug_saliency(ref, grid, mask), np.where(grid.to_pixels(mask), ref, 0))


def _blocks(grid, pixels):
    out = np.zeros(grid.n_vars, bool)
    out[grid.group()[: pixels.size][pixels.ravel()]] = True
    return out


def _check_real_explanation(enc, sol):
    p = enc.problem
    assert sol.status == "optimal" and sol.certificate.valid and sol.lower_bound == sol.objective
    assert certify(p, sol.mask).valid
    # optimality seen from the exact checker: dropping any kept block breaks some constraint
    for j in np.flatnonzero(sol.mask)[:25]:
        planted = sol.mask.copy()
        planted[j] = False
        cert = certify(p, planted)
        assert not cert.valid and cert.violated


def test_mnist_digit_end_to_end(mnist, mnist_test_split):
    x = mnist_test_split[0][0]
    enc = encode_smug(mnist, x, SmugConfig(top_k=100, window=4))
    assert enc.target == int(mnist.logits(x[None])[0].argmax())
    sol = solve(enc.problem, timeout=60)
    _check_real_explanation(enc, sol)


@pytest.mark.slow
def test_lite0_real_photo_end_to_end(lite0, cat):
    model, _ = lite0
    enc = encode_smug(model, cat, SmugConfig(top_k=3000, gamma=0.0, window=4, ig_steps=16))
    assert enc.target == 284  # Siamese cat
    assert len(enc.neurons) == 3000 and enc.problem.n_constraints <= 3000
    sol = solve(enc.problem, timeout=120)
    _check_real_explanation(enc, sol)
    base = base_mask(enc.layer, enc.neurons, enc.grid)
    assert sol.objective < base.sum() and not (sol.mask & ~base).any()  # SMUG within SMUG_base


def _z3_optimum(text: str) -> int:
    import z3

    opt = z3.Optimize()
    opt.from_string(text)
    assert opt.check() == z3.sat
    model = opt.model()
    return sum(z3.is_true(model[d]) for d in model.decls())


@pytest.mark.slow
@pytest.mark.parametrize("form", ["linear", "affine"])
def test_lite0_dump_resolved_by_plain_z3_gives_the_same_optimum(lite0, cat, form):
    from smug.solver.smtlib import to_smtlib

    model, _ = lite0
    enc = encode_smug(model, cat, SmugConfig(top_k=3000, window=4, form=form, ig_steps=16))
    sol = solve(enc.problem, timeout=120)
    assert sol.status == "optimal"
    assert _z3_optimum(to_smtlib(enc.problem)) == sol.objective
    if form == "affine":  # Eq. 3 with the folded bias is met by an almost empty mask
        assert sol.objective < 50


@pytest.mark.parametrize("bad, name", [
    (dict(top_k=True), "top_k"), (dict(top_k=0), "top_k"), (dict(top_k=2.0), "top_k"),
    (dict(gamma=float("nan")), "gamma"), (dict(gamma=float("inf")), "gamma"), (dict(gamma=1.0), "gamma"),
    (dict(gamma=-0.1), "gamma"), (dict(gamma=True), "gamma"), (dict(gamma="0.5"), "gamma"),
    (dict(form="quadratic"), "form"), (dict(ig_steps=0), "ig_steps"), (dict(ig_steps=True), "ig_steps"),
    (dict(ig_tolerance=float("nan")), "ig_tolerance"), (dict(ig_tolerance=-1.0), "ig_tolerance"),
])
@pytest.mark.parametrize("config", ["image", "text"])
def test_configs_reject_bad_values_and_name_the_parameter(config, bad, name):
    from smug.encoders.text import TextSmugConfig

    with pytest.raises(ValueError, match=name):
        (SmugConfig if config == "image" else TextSmugConfig)(**bad)


@pytest.mark.parametrize("bad, name", [
    (dict(window=0), "window"), (dict(window=True), "window"), (dict(baseline=float("nan")), "baseline"),
    (dict(baseline=float("-inf")), "baseline"),
])
def test_image_config_rejects_bad_window_and_baseline(bad, name):
    with pytest.raises(ValueError, match=name):
        SmugConfig(**bad)


def test_configs_accept_numpy_numbers():
    from smug.encoders.text import TextSmugConfig

    c = SmugConfig(top_k=np.int64(5), gamma=np.float32(0.5), window=np.int32(2), baseline=np.float64(-1), ig_steps=8)
    assert (c.top_k, c.window, c.ig_steps) == (5, 2, 8)
    assert TextSmugConfig(top_k=np.int64(5), gamma=0, ig_tolerance=0).gamma == 0
