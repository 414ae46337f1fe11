"""Rationale measures for text explanations that need no human annotations.

A rationale is a set of selected words of a text (a boolean per position of the
model input; padding positions can never be selected).  The model's score is the
rating ``r`` (direction ``positive``) or ``1 - r`` (``negative``; ``auto``: positive
when ``r(x) >= 0.5``), as in :mod:`smug.encoders.text`.

* :class:`WordSparsity` (paper 003): selected words / non-padding words.
* :class:`Sufficiency` (DeYoung et al. 2020, ERASER): ``s(x) - s(x_S)``, the score
  lost when only the selected words are kept (lower is better; negative: the
  rationale alone scores higher than the text).
* :class:`Comprehensiveness` (ERASER): ``s(x) - s(x \\ S)``, the score lost when the
  selected words are removed (higher is better).

``mode="mask"`` (default) replaces a dropped word by the padding token in place --
the zero embedding, the same masked input SMUG's constraints and SIS reason about;
``mode="delete"`` removes it and shifts the rest left (ERASER's deletion).
Classes follow Quantus: parameters in ``__init__``, the work in ``__call__``.
"""

from __future__ import annotations

import numpy as np

from smug.models.runtime import OnnxModel
from smug.models.text_cnn import PAD_ID, ratings

MODES = ("mask", "delete")


def _check(ids: np.ndarray, selected: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.asarray(ids).astype(np.int64).ravel()
    selected = np.asarray(selected, dtype=bool).ravel()
    if selected.shape != ids.shape:
        raise ValueError(f"one selection flag per position is needed: {selected.shape} vs {ids.shape}")
    words = ids != pad_id
    if not words.any():
        raise ValueError("the text has no words (only padding)")
    if (selected & ~words).any():
        raise ValueError("padding positions cannot be selected")
    return ids, selected, words


def keep_only(ids: np.ndarray, keep: np.ndarray, mode: str = "mask", pad_id: int = PAD_ID) -> np.ndarray:
    """The ids with every word not in ``keep`` dropped (padding in place, or deleted)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    ids = np.asarray(ids).astype(np.int64).ravel()
    keep = np.asarray(keep, dtype=bool) & (ids != pad_id)
    if mode == "mask":
        return np.where(keep, ids, pad_id)
    out = np.full_like(ids, pad_id)
    kept = ids[keep]
    out[: len(kept)] = kept
    return out


class WordSparsity:
    """Selected words / non-padding words (paper 003's sparsity for text)."""

    def __init__(self, pad_id: int = PAD_ID):
        self.pad_id = pad_id

    def __call__(self, ids: np.ndarray, selected: np.ndarray) -> float:
        _, selected, words = _check(ids, selected, self.pad_id)
        return float(selected.sum() / words.sum())


class _ScoreDrop:
    """``s(x) - s(x')`` for a derived input ``x'`` (see subclasses)."""

    keep_selected: bool

    def __init__(self, direction: str = "auto", mode: str = "mask", pad_id: int = PAD_ID):
        from smug.encoders.text import DIRECTIONS

        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.direction, self.mode, self.pad_id = direction, mode, pad_id

    def __call__(self, model: OnnxModel, ids: np.ndarray, selected: np.ndarray) -> float:
        from smug.encoders.text import choose_direction

        ids, selected, words = _check(ids, selected, self.pad_id)
        keep = selected if self.keep_selected else (words & ~selected)
        r_full, r_part = ratings(model, np.stack([ids, keep_only(ids, keep, self.mode, self.pad_id)]))
        sign = 1.0 if choose_direction(self.direction, float(r_full)) == "positive" else -1.0
        return float(sign * (r_full - r_part))


class Sufficiency(_ScoreDrop):
    """``s(x) - s(only the selected words)``: lower is better (ERASER)."""

    keep_selected = True


class Comprehensiveness(_ScoreDrop):
    """``s(x) - s(x without the selected words)``: higher is better (ERASER)."""

    keep_selected = False
