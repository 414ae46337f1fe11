"""Sparsity (paper 003 Sec. 5): the fraction of the pixels with a non-zero attribution;
for text, of the words.  A channel-first (C, H, W) attribution counts a pixel as
non-zero when any of its channels is."""

from __future__ import annotations

import numpy as np


def sparsity(saliency: np.ndarray, channels_first: bool = False, atol: float = 0.0) -> float:
    """Fraction of entries with ``|value| > atol`` (pixels of an (H, W) map, tokens of
    a 1D map; ``channels_first``: reduce a (C, ...) map over its first axis first)."""
    s = np.abs(np.asarray(saliency, dtype=np.float64))
    if s.size == 0:
        raise ValueError("sparsity of an empty map")
    if np.isnan(s).any():
        raise ValueError("saliency map contains NaN")
    if channels_first:
        s = s.max(axis=0)
    return float((s > atol).mean())


def word_sparsity(word_scores) -> float:
    """Fraction of words with a non-zero score (text explanations)."""
    return sparsity(np.asarray(list(word_scores), dtype=np.float64))
