import itertools

import numpy as np
import pytest

from smug.encoders.text import (
    TextSmugConfig, WordGrid, encode_text, find_text_layers, masked_ids,
)
from smug.models.text_cnn import PAD_ID, ratings, tokenizer_for
from smug.bench.datasets import SNIPPETS as DATA
from smug.models.zoo import load_model
from smug.solver.certificate import certify
from smug.solver.solve import solve


@pytest.fixture(scope="module")
def shipped():
    return load_model("text-cnn")[0], tokenizer_for("text-cnn")


@pytest.fixture(scope="module")
def tiny():
    from smug.bench.nets import random_text_cnn as random_model

    net, model = random_model(vocab=12, length=8, seed=3, embed=4, kernels=16, width=3)
    return net, model


def real_snippets(n: int) -> list[str]:
    if not DATA.is_file():
        pytest.skip(f"real data not found: {DATA} (the shared/ folder beside the project)")
    from smug.bench.datasets import snippets_split as load_split

    texts, _ = load_split()["test"]
    return [t for t in texts if 6 <= len(t.split()) <= 25][:n]


def preact(model, layers, ids: np.ndarray) -> np.ndarray:
    """Pre-activations (K * L',) by onnxruntime: an independent path from the encoding."""
    t = layers.layer.preact_tensor
    return model.tensors(np.asarray(ids, np.float32)[None], [t])[t][0].ravel().astype(np.float64)


def test_conv1d_is_read_as_a_conv_over_embeddings(tiny):
    _, model = tiny
    layers = find_text_layers(model)
    assert layers.layer.input_shape == (4, 1, 8) and layers.layer.output_shape == (16, 1, 8)
    ids = np.array([3, 5, 7, 2, 9, 0, 0, 0])
    np.testing.assert_allclose(layers.layer.preactivation(layers.embed(ids)).ravel(), preact(model, layers, ids),
                               atol=1e-5)
    assert not layers.embedding[PAD_ID].any()


def test_padding_positions_are_never_mask_variables(shipped):
    model, tok = shipped
    tt = tok("a gorgeous and moving film")
    enc = encode_text(model, tt.ids, TextSmugConfig(top_k=50))
    assert enc.problem.n_vars == tt.n_words == 5
    group = enc.problem.group.reshape(100, tok.length)  # (E, L), channel-major
    assert (group[:, 5:] == -1).all()
    np.testing.assert_array_equal(group[:, :5], np.tile(np.arange(5), (100, 1)))
    assert not enc.problem.x.reshape(100, -1)[:, 5:].any()  # padding embeddings are zero


@pytest.mark.parametrize("form", ["linear", "affine"])
def test_masked_onnx_forward_equals_the_linear_terms(shipped, form):
    model, tok = shipped
    tt = tok("a gorgeous, funny and deeply moving film, let down by a dull and clumsy ending")
    enc = encode_text(model, tt.ids, TextSmugConfig(top_k=100, form=form))
    layers, p = enc.layers, enc.problem
    bias_all = np.repeat(layers.layer.bias, tok.length)
    rng = np.random.default_rng(0)
    for mask in [np.ones(p.n_vars, bool), np.zeros(p.n_vars, bool), *(rng.random((5, p.n_vars)) < 0.5)]:
        onnx_vals = preact(model, layers, masked_ids(tt.ids, enc.grid, mask))[enc.constrained]
        if form == "linear":
            onnx_vals = onnx_vals - bias_all[enc.constrained]
        ours = p.weights @ p.masked_input(mask) + p.bias
        np.testing.assert_allclose(ours, onnx_vals, atol=2e-5)


def test_brute_force_agrees_with_the_minimal_word_mask(tiny):
    _, model = tiny
    ids = np.array([3, 5, 7, 2, 9, 4, 0, 0])
    layers = find_text_layers(model)
    for form, gamma in [("linear", 0.0), ("affine", 0.0), ("linear", 0.5)]:
        enc = encode_text(model, ids, TextSmugConfig(top_k=48, gamma=gamma, form=form, ig_steps=16), layers)
        p = enc.problem
        assert p.n_vars == 6 and p.n_constraints >= 5
        rows = enc.constrained
        bias = np.repeat(layers.layer.bias, 8)[rows] if form == "linear" else 0.0
        original = preact(model, layers, ids)[rows] - bias
        feasible = []
        for bits in itertools.product([False, True], repeat=6):
            mask = np.array(bits)
            masked = preact(model, layers, masked_ids(ids, enc.grid, mask))[rows] - bias
            slack = masked - gamma * original
            # no float ties in this instance (exact 0: a bias-free neuron whose words are all masked)
            assert ((np.abs(slack) > 1e-4) | (slack == 0)).all()
            if (slack > 0).all():
                feasible.append(mask)
        best = min(int(m.sum()) for m in feasible)
        assert 0 < best < 6  # a real choice
        sol = solve(p, timeout=30)
        assert sol.status == "optimal" and sol.objective == best
        assert any((sol.mask == m).all() for m in feasible if m.sum() == best)
        assert sol.certificate.valid


def test_certificate_on_real_snippets(shipped):
    model, tok = shipped
    for text in real_snippets(3):
        tt = tok(text)
        enc = encode_text(model, tt.ids)
        sol = solve(enc.problem, timeout=30)
        assert sol.status == "optimal" and sol.certificate.valid
        assert certify(enc.problem, sol.mask).valid
        assert 0 < sol.objective <= tt.n_words
        # fewer words would fail: dropping any kept word violates some constraint (minimality)
        for j in np.flatnonzero(sol.mask):
            smaller = sol.mask.copy()
            smaller[j] = False
            assert not certify(enc.problem, smaller).valid
        # the masked text as the model sees it keeps every constrained neuron above gamma * original
        bias = np.repeat(enc.layers.layer.bias, tok.length)[enc.constrained]
        masked = preact(model, enc.layers, masked_ids(tt.ids, enc.grid, sol.mask))[enc.constrained] - bias
        assert (masked > -1e-5).all()
        # the optimal mask only keeps words some kept neuron reads: inside SMUG_base
        assert not (sol.mask & ~enc.base_mask()).any()


def test_eq4_word_scores_match_a_plain_loop(shipped):
    model, tok = shipped
    tt = tok("the dullest and most clumsy mess of the year")
    enc = encode_text(model, tt.ids, TextSmugConfig(top_k=40))
    assert enc.direction == "negative" and enc.rating < 0.5
    K, _, out_len = enc.layers.layer.output_shape
    expected = np.zeros(tok.length)
    for n, a in zip(enc.neurons, enc.attribution):
        centre = n % out_len  # width 3, zero padding 1: output p reads positions p-1..p+1
        for q in range(centre - 1, centre + 2):
            if 0 <= q < tok.length:
                expected[q] += a
    np.testing.assert_allclose(enc.eq4_scores(), expected, atol=1e-12)
    mask = np.zeros(enc.grid.n_vars, bool)
    mask[[1, 4]] = True
    sal = enc.saliency(mask)
    np.testing.assert_allclose(sal[[1, 4]], -expected[[1, 4]])  # negative direction: lowers the rating
    assert not np.delete(sal, [1, 4]).any()


def test_ig_explains_the_chosen_direction(shipped):
    model, tok = shipped
    tt = tok("a gorgeous and moving film")
    pos = encode_text(model, tt.ids, TextSmugConfig(top_k=20))
    neg = encode_text(model, tt.ids, TextSmugConfig(top_k=20, direction="negative"))
    assert pos.direction == "positive" and pos.rating > 0.5
    r = float(ratings(model, tt.ids[None])[0])
    assert pos.ig.f_input == pytest.approx(r, abs=1e-6) and neg.ig.f_input == pytest.approx(1 - r, abs=1e-6)
    assert pos.ig.completeness_error < 0.05
    np.testing.assert_allclose(neg.ig.attribution, -pos.ig.attribution, atol=1e-6)


def test_word_grid_and_config_checks():
    grid = WordGrid.of_ids(np.array([4, 0, 7, 0]), dim=2)
    assert grid.positions.tolist() == [0, 2] and grid.names() == ("w0", "w2")
    assert grid.group().tolist() == [0, -1, 1, -1, 0, -1, 1, -1]
    with pytest.raises(ValueError, match="top_k"):
        TextSmugConfig(top_k=0)
    with pytest.raises(ValueError, match="direction"):
        TextSmugConfig(direction="up")
    with pytest.raises(ValueError, match="form"):
        TextSmugConfig(form="quadratic")


def test_only_padding_and_image_models_are_refused(shipped, mnist):
    model, tok = shipped
    with pytest.raises(ValueError, match="no words"):
        encode_text(model, np.zeros(tok.length, np.int64))
    from smug.encoders.first_layer import UnsupportedModel

    with pytest.raises(UnsupportedModel, match="token ids"):
        find_text_layers(mnist)
