import numpy as np
import pytest

from smug.metrics.text import Comprehensiveness, Sufficiency, WordSparsity, keep_only
from smug.models.text_cnn import PAD_ID


@pytest.fixture(scope="module")
def tiny():
    from smug.bench.nets import random_text_cnn as random_model

    return random_model(vocab=12, length=8, seed=2, embed=4, kernels=8, width=3)[1]


IDS = np.array([3, 5, 7, 2, 9, 0, 0, 0])


def rating(model, ids) -> float:
    return float(model.logits(np.asarray(ids, np.float32)[None])[0, 0])


def test_word_sparsity_counts_words_not_padding():
    sel = np.zeros(8, bool)
    sel[[1, 3]] = True
    assert WordSparsity()(IDS, sel) == pytest.approx(2 / 5)
    assert WordSparsity()(IDS, np.zeros(8, bool)) == 0.0
    sel[6] = True
    with pytest.raises(ValueError, match="padding positions cannot be selected"):
        WordSparsity()(IDS, sel)
    with pytest.raises(ValueError, match="one selection flag per position"):
        WordSparsity()(IDS, np.ones(3, bool))
    with pytest.raises(ValueError, match="no words"):
        WordSparsity()(np.zeros(8, int), np.zeros(8, bool))


def test_keep_only_masks_in_place_or_deletes():
    keep = np.array([True, False, True, False, True, False, False, False])
    assert keep_only(IDS, keep).tolist() == [3, 0, 7, 0, 9, 0, 0, 0]
    assert keep_only(IDS, keep, mode="delete").tolist() == [3, 7, 9, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="mode"):
        keep_only(IDS, keep, mode="blur")


@pytest.mark.parametrize("direction", ["positive", "negative"])
def test_sufficiency_and_comprehensiveness_against_plain_forward_passes(tiny, direction):
    sel = np.array([False, True, True, False, False, False, False, False])
    sign = 1.0 if direction == "positive" else -1.0
    full = rating(tiny, IDS)
    only = rating(tiny, [0, 5, 7, 0, 0, 0, 0, 0])
    without = rating(tiny, [3, 0, 0, 2, 9, 0, 0, 0])
    assert Sufficiency(direction)(tiny, IDS, sel) == pytest.approx(sign * (full - only), abs=1e-7)
    assert Comprehensiveness(direction)(tiny, IDS, sel) == pytest.approx(sign * (full - without), abs=1e-7)
    deleted = rating(tiny, [5, 7, 0, 0, 0, 0, 0, 0])
    assert Sufficiency(direction, mode="delete")(tiny, IDS, sel) == pytest.approx(sign * (full - deleted), abs=1e-7)


def test_extreme_selections(tiny):
    words = IDS != PAD_ID
    empty = rating(tiny, np.zeros(8))
    full = rating(tiny, IDS)
    sign = 1.0 if full >= 0.5 else -1.0  # direction "auto"
    assert Sufficiency()(tiny, IDS, words) == 0.0
    assert Comprehensiveness()(tiny, IDS, np.zeros(8, bool)) == 0.0
    assert Comprehensiveness()(tiny, IDS, words) == pytest.approx(sign * (full - empty), abs=1e-7)
    assert Sufficiency()(tiny, IDS, np.zeros(8, bool)) == pytest.approx(sign * (full - empty), abs=1e-7)
    with pytest.raises(ValueError, match="direction"):
        Sufficiency("sideways")
