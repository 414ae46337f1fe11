"""Sparsity: the fraction of non-zero pixels (or words)."""

from __future__ import annotations

import numpy as np
import pytest

from smug.metrics.sparsity import sparsity, word_sparsity


def test_pixel_and_channel_sparsity():
    s = np.zeros((4, 5))
    s[0, :2] = 1.0
    s[3, 4] = -0.5  # negative values count as non-zero
    assert sparsity(s) == pytest.approx(3 / 20)
    full = np.zeros((3, 4, 5))
    full[1, 0, 0] = 2.0
    full[2, 0, 0] = 1.0  # same pixel, other channel
    full[0, 2, 2] = 1.0
    assert sparsity(full, channels_first=True) == pytest.approx(2 / 20)
    assert sparsity(np.full((2, 2), 1e-9), atol=1e-6) == 0.0


def test_word_sparsity_and_errors():
    assert word_sparsity([0.0, 0.3, 0.0, -0.1]) == 0.5
    with pytest.raises(ValueError, match="empty"):
        sparsity(np.zeros(0))
    with pytest.raises(ValueError, match="NaN"):
        sparsity(np.array([np.nan, 1.0]))
