import numpy as np
import pytest

from smug.baselines.attribution import attribute, methods
from smug.models.text_cnn import PAD_ID, ratings, tokenizer_for
from smug.models.zoo import load_model


@pytest.fixture(scope="module")
def tiny():
    from smug.bench.nets import random_text_cnn as random_model

    return random_model(vocab=12, length=8, seed=1, embed=4, kernels=8, width=3)


@pytest.fixture(scope="module")
def shipped():
    return load_model("text-cnn")[0], tokenizer_for("text-cnn")


def test_text_methods_are_registered_with_the_common_call_shape(tiny):
    assert {"text_ig", "text_sis"} <= set(methods())
    _, model = tiny
    ids = np.array([3, 5, 7, 2, 0, 0, 0, 0], np.float32)
    for m in ("text_ig", "text_sis"):
        a = attribute(model, ids, None, m)
        assert a.method == m and a.target == 0 and a.map.shape == (8,)
        assert not a.map[4:].any()  # padding scores 0
    with pytest.raises(ValueError, match="integer token ids"):
        attribute(model, ids + 0.5, None, "text_ig")
    with pytest.raises(ValueError, match="no words"):
        attribute(model, np.zeros(8, np.float32), None, "text_sis")
    with pytest.raises(ValueError, match="fraction"):
        attribute(model, ids, None, "text_sis", fraction=0.0)


def test_text_ig_matches_captum_on_the_embeddings(tiny):
    import torch
    from captum.attr import IntegratedGradients

    net, model = tiny
    ids = np.array([3, 5, 7, 2, 9, 0, 0, 0])

    def from_embedding(e):
        h = torch.relu(net.conv(e.transpose(1, 2))).amax(dim=2)
        return torch.sigmoid(net.dense(h))[:, 0]

    emb = net.embedding(torch.as_tensor(ids)[None]).detach()
    ref = IntegratedGradients(from_embedding).attribute(emb, baselines=torch.zeros_like(emb), n_steps=64,
                                                        method="riemann_middle")
    ref = ref[0].sum(dim=1).double().numpy()
    ours = attribute(model, ids.astype(np.float32), 0, "text_ig", steps=64)
    np.testing.assert_allclose(ours.map, ref, atol=1e-5)
    r_full, r_empty = ratings(model, np.stack([ids, np.zeros_like(ids)]))
    assert ours.map.sum() == pytest.approx(r_full - r_empty, abs=0.02 * abs(r_full - r_empty) + 1e-4)


def _check_sis(model, ids: np.ndarray, a) -> None:
    """Each SIS is sufficient by its own definition, backward-minimal, and the sets are disjoint."""
    info = a.params
    sign = 1.0 if info["direction"] == "positive" else -1.0

    def score(keep_positions):
        row = np.full_like(ids, PAD_ID)
        row[keep_positions] = ids[keep_positions]
        r = float(ratings(model, row[None])[0])
        return r if sign > 0 else 1 - r

    assert info["sets"], "a text whose whole reaches the threshold has at least one SIS"
    seen = set()
    for k, s in enumerate(info["sets"], start=1):
        assert score(s) >= info["threshold"]
        assert not seen & set(s.tolist())
        seen |= set(s.tolist())
        np.testing.assert_allclose(a.map[s], sign / k)
        if not info["empty_sufficient"]:
            for j in range(len(s)):
                assert score(np.delete(s, j)) < info["threshold"]
    assert (ids[list(seen)] != PAD_ID).all()


def test_text_sis_is_sufficient_and_minimal_on_the_tiny_model(tiny):
    _, model = tiny
    ids = np.array([3, 5, 7, 2, 9, 4, 0, 0])
    a = attribute(model, ids.astype(np.float32), 0, "text_sis")
    _check_sis(model, ids, a)
    s_full, s_empty = a.params["s_full"], a.params["s_empty"]
    assert a.params["threshold"] == pytest.approx(s_empty + 0.9 * (s_full - s_empty))


def test_text_sis_on_real_text_both_directions(shipped):
    model, tok = shipped
    for text, direction in [("a gorgeous, funny and deeply moving film", "positive"),
                            ("the dullest, most clumsy and boring mess of the year", "negative")]:
        tt = tok(text)
        a = attribute(model, tt.model_input, 0, "text_sis")
        assert a.params["direction"] == direction
        _check_sis(model, tt.ids, a)
        assert a.params["s_full"] > a.params["s_empty"]
    fixed = attribute(model, tok("a gorgeous film").model_input, 0, "text_sis", threshold=0.8, max_sets=1)
    assert fixed.params["threshold"] == 0.8 and len(fixed.params["sets"]) <= 1


def test_text_ig_sign_follows_the_rating(shipped):
    model, tok = shipped
    tt = tok("a gorgeous film with a dull ending")
    a = attribute(model, tt.model_input, 0, "text_ig")
    words = dict(zip(tt.words, a.map))
    assert words["gorgeous"] > 0 > words["dull"]
