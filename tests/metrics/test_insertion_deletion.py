"""Insertion/deletion curves on a stub classifier with a closed-form answer."""

from __future__ import annotations

import numpy as np
import pytest

from smug.metrics.insertion_deletion import InsertionDeletion, auc


class SumStub:
    """Logits ``[sum(x), 0]``: P(class 0) = sigmoid(sum of the kept pixels)."""

    input_shape = (1, 4, 4)

    def logits(self, x, batch_size=64):
        s = np.asarray(x, np.float64).reshape(len(x), -1).sum(axis=1)
        return np.stack([s, np.zeros_like(s)], axis=1)

    def checked_input(self, x, target=None):
        return np.asarray(x, np.float32), 0 if target is None else int(target)


def sig(z):
    return 1 / (1 + np.exp(-z))


def test_curves_follow_the_ranking():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4) / 4  # pixel i has value i / 4
    saliency = x[0].copy()  # rank = value: the largest first
    c = InsertionDeletion(steps=16)(SumStub(), x, saliency, target=0)
    vals = np.sort(x.ravel())[::-1].astype(np.float64)
    kept = np.concatenate([[0.0], np.cumsum(vals)])
    np.testing.assert_allclose(c.fractions, np.arange(17) / 16)
    np.testing.assert_allclose(c.insertion, sig(kept), rtol=1e-6)
    np.testing.assert_allclose(c.deletion, sig(vals.sum() - kept), rtol=1e-6)
    # the trapezoid areas
    assert c.insertion_auc == pytest.approx(float(np.sum(np.diff(c.fractions) * (sig(kept)[1:] + sig(kept)[:-1]) / 2)))
    # a reversed ranking inserts the small pixels first: lower insertion, higher deletion AUC
    r = InsertionDeletion(steps=16)(SumStub(), x, -saliency, target=0)
    assert r.insertion_auc < c.insertion_auc and r.deletion_auc > c.deletion_auc


def test_auc_and_errors():
    assert auc(np.array([0, 0.5, 1]), np.array([1, 1, 1])) == pytest.approx(1.0)
    assert auc(np.array([0, 1]), np.array([0, 1])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="steps"):
        InsertionDeletion(steps=0)
